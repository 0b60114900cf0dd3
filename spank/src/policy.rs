//! What a failed callback does, by hook and context. Pure: the export layer applies it.
//!
//! Why: a `required` plugin that fails in slurmstepd before the tasks exist can leave the job
//! pending and drain the node, and one failing in slurmd or in a prolog/epilog drains the node
//! too. Only the user's command (srun/sbatch/salloc) and the task itself may fail.
use crate::context::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Init,
    InitPostOpt,
    LocalUserInit,
    UserInit,
    TaskInitPrivileged,
    TaskInit,
    TaskPostFork,
    TaskExit,
    Exit,
    JobProlog,
    JobEpilog,
    SlurmdExit,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Init => "init",
            Hook::InitPostOpt => "init_post_opt",
            Hook::LocalUserInit => "local_user_init",
            Hook::UserInit => "user_init",
            Hook::TaskInitPrivileged => "task_init_privileged",
            Hook::TaskInit => "task_init",
            Hook::TaskPostFork => "task_post_fork",
            Hook::TaskExit => "task_exit",
            Hook::Exit => "exit",
            Hook::JobProlog => "job_prolog",
            Hook::JobEpilog => "job_epilog",
            Hook::SlurmdExit => "slurmd_exit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Return an error to Slurm: the user's command or the task fails.
    Fail,
    /// Keep the error and fail each task in `task_init` with it (slurmstepd before fork).
    DeferToTask,
    /// Log it and report success: failing here would hurt the node, not the job.
    LogOnly,
}

pub fn on_error(hook: Hook, context: Context) -> OnError {
    match context {
        Context::Local | Context::Allocator => OnError::Fail,
        Context::Remote => match hook {
            Hook::Init | Hook::InitPostOpt | Hook::UserInit => OnError::DeferToTask,
            Hook::TaskInitPrivileged | Hook::TaskInit => OnError::Fail,
            _ => OnError::LogOnly,
        },
        Context::Slurmd | Context::JobScript | Context::Unknown(_) => OnError::LogOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_fails_where_it_would_drain_a_node() {
        for hook in [
            Hook::Init,
            Hook::JobProlog,
            Hook::JobEpilog,
            Hook::SlurmdExit,
        ] {
            assert_eq!(on_error(hook, Context::Slurmd), OnError::LogOnly);
            assert_eq!(on_error(hook, Context::JobScript), OnError::LogOnly);
        }
        assert_eq!(on_error(Hook::Init, Context::Remote), OnError::DeferToTask);
        assert_eq!(
            on_error(Hook::InitPostOpt, Context::Remote),
            OnError::DeferToTask
        );
        assert_eq!(on_error(Hook::Exit, Context::Remote), OnError::LogOnly);
    }

    #[test]
    fn fails_the_users_command_or_task() {
        assert_eq!(on_error(Hook::Init, Context::Allocator), OnError::Fail);
        assert_eq!(on_error(Hook::InitPostOpt, Context::Local), OnError::Fail);
        assert_eq!(on_error(Hook::TaskInit, Context::Remote), OnError::Fail);
    }
}
