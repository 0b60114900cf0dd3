//! srun / sbatch / salloc side (local and allocator contexts), as the submitting user.
use spank::Result;

use crate::options::FrameOptions;

/// Checks done before the job is queued. The values were validated as they were parsed.
pub fn check(options: &FrameOptions) -> Result<()> {
    if let Some(dir) = &options.frame_dir {
        tracing::debug!("frame directory {}", dir.display());
    }
    Ok(())
}
