/* The Slurm headers slurm-sys binds. slurm.h is parsed, but only allowlisted items are kept. */
#include <slurm/spank.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurm_version.h>
#include <slurm/slurm.h>
