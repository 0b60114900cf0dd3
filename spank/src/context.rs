//! Which Slurm process is running the plugin.
use slurm_sys as sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// srun, as the user.
    Local,
    /// slurmstepd, as root (some task callbacks as the user).
    Remote,
    /// sbatch, salloc or scrontab, as the user.
    Allocator,
    /// slurmd itself, long-lived, as root.
    Slurmd,
    /// A `slurmstepd spank prolog|epilog` process, as root.
    JobScript,
    /// Slurm could not tell (S_CTX_ERROR) or returned a value this build does not know.
    Unknown(u32),
}

impl Context {
    /// The context of the calling process. Safe to call from any SPANK callback.
    pub fn current() -> Context {
        // SAFETY: spank_context takes no arguments and only reads Slurm's global state.
        Context::from_raw(unsafe { sys::spank_context() })
    }

    /// Maps Slurm's integer without assuming it is one we know.
    pub fn from_raw(raw: sys::spank_context) -> Context {
        match raw {
            sys::S_CTX_LOCAL => Context::Local,
            sys::S_CTX_REMOTE => Context::Remote,
            sys::S_CTX_ALLOCATOR => Context::Allocator,
            sys::S_CTX_SLURMD => Context::Slurmd,
            sys::S_CTX_JOB_SCRIPT => Context::JobScript,
            other => Context::Unknown(other),
        }
    }

    /// Contexts in which option callbacks run and options must be registered.
    pub fn parses_options(self) -> bool {
        matches!(
            self,
            Context::Local | Context::Remote | Context::Allocator | Context::JobScript
        )
    }

    /// Contexts where the user typed the command (srun, sbatch, salloc).
    pub fn is_submission(self) -> bool {
        matches!(self, Context::Local | Context::Allocator)
    }

    pub fn name(self) -> &'static str {
        match self {
            Context::Local => "local",
            Context::Remote => "remote",
            Context::Allocator => "allocator",
            Context::Slurmd => "slurmd",
            Context::JobScript => "job_script",
            Context::Unknown(_) => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_kept_not_transmuted() {
        assert_eq!(Context::from_raw(sys::S_CTX_REMOTE), Context::Remote);
        assert_eq!(Context::from_raw(sys::S_CTX_ERROR), Context::Unknown(0));
        assert_eq!(Context::from_raw(77), Context::Unknown(77));
    }

    #[test]
    fn option_contexts() {
        assert!(Context::Allocator.parses_options());
        assert!(!Context::Slurmd.parses_options());
        assert!(Context::Local.is_submission());
        assert!(!Context::Remote.is_submission());
    }
}
