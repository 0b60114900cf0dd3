//! `Spank`: the handle Slurm passes to each callback, with typed accessors. Every accessor
//! returns an error (never panics) when Slurm says no, returns NULL or a value we cannot use.
use std::ffi::{CStr, CString, c_char, c_int};

use slurm_sys as sys;

use crate::context::Context;
use crate::error::{Error, Result};

/// How a task ended, decoded from Slurm's wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskExit {
    Exited(i32),
    Signaled {
        signal: i32,
        core_dumped: bool,
    },
    /// A status that is neither (stopped/continued): kept raw.
    Other(i32),
}

impl TaskExit {
    pub fn from_wait_status(status: c_int) -> TaskExit {
        if libc::WIFEXITED(status) {
            TaskExit::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            TaskExit::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            }
        } else {
            TaskExit::Other(status)
        }
    }
}

pub struct Spank {
    raw: sys::spank_t,
}

/// Slurm's step id of a batch script (SLURM_BATCH_SCRIPT, from the headers).
pub const BATCH_STEP_ID: u32 = sys::SLURM_BATCH_SCRIPT;

fn spank_error(what: &str, rc: sys::spank_err_t) -> Error {
    // SAFETY: spank_strerror returns a pointer to a static string (or NULL).
    let text = unsafe { sys::spank_strerror(rc) };
    let text = if text.is_null() {
        format!("error {rc}")
    } else {
        // SAFETY: non-NULL, NUL-terminated static string owned by Slurm.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    Error::new(format!("{what}: {text}"))
}

fn c_string(what: &str, value: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::new(format!("{what}: contains a NUL byte")))
}

/// Copies a NULL-terminated array of C strings.
///
/// # Safety
/// `array` must be NULL or point to a NULL-terminated array of valid C strings.
unsafe fn string_array(array: *const *const c_char, limit: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    if array.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        if limit.is_some_and(|n| i >= n) {
            break;
        }
        // SAFETY: within the array per the caller's contract.
        let item = unsafe { *array.add(i) };
        if item.is_null() {
            break;
        }
        // SAFETY: non-NULL C string from Slurm.
        out.push(
            unsafe { CStr::from_ptr(item) }
                .to_string_lossy()
                .into_owned(),
        );
        i += 1;
    }
    out
}

impl Spank {
    /// Wraps the raw handle of the current callback.
    ///
    /// # Safety
    /// `raw` must be the handle Slurm passed to the running callback.
    pub unsafe fn from_raw(raw: sys::spank_t) -> Spank {
        Spank { raw }
    }

    pub fn context(&self) -> Context {
        Context::current()
    }

    fn get_u32(&self, item: sys::spank_item_t, what: &str) -> Result<u32> {
        let mut value: u32 = 0;
        // SAFETY: these items take one uint32_t* (spank.h).
        let rc = unsafe { sys::spank_get_item(self.raw, item, &mut value as *mut u32) };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error(what, rc));
        }
        Ok(value)
    }

    fn get_int(&self, item: sys::spank_item_t, what: &str) -> Result<c_int> {
        let mut value: c_int = 0;
        // SAFETY: these items take one int* (spank.h).
        let rc = unsafe { sys::spank_get_item(self.raw, item, &mut value as *mut c_int) };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error(what, rc));
        }
        Ok(value)
    }

    pub fn job_id(&self) -> Result<u32> {
        self.get_u32(sys::S_JOB_ID, "job id")
    }

    pub fn step_id(&self) -> Result<u32> {
        self.get_u32(sys::S_JOB_STEPID, "step id")
    }

    /// True in the batch script's step (the one step that lasts as long as a batch job).
    pub fn is_batch_step(&self) -> bool {
        self.step_id().is_ok_and(|id| id == BATCH_STEP_ID)
    }

    pub fn uid(&self) -> Result<u32> {
        // uid_t and gid_t are 32-bit on every platform Slurm runs on.
        self.get_u32(sys::S_JOB_UID, "job uid")
    }

    pub fn gid(&self) -> Result<u32> {
        self.get_u32(sys::S_JOB_GID, "job gid")
    }

    pub fn total_task_count(&self) -> Result<u32> {
        self.get_u32(sys::S_JOB_TOTAL_TASK_COUNT, "total task count")
    }

    /// The array's job id and this element's task id, or None for a job that is no array.
    pub fn array(&self) -> Result<Option<(u32, u32)>> {
        let array_job = self.get_u32(sys::S_JOB_ARRAY_ID, "array job id")?;
        if array_job == 0 {
            return Ok(None);
        }
        let task = self.get_u32(sys::S_JOB_ARRAY_TASK_ID, "array task id")?;
        if task == sys::NO_VAL {
            return Ok(None);
        }
        Ok(Some((array_job, task)))
    }

    /// The task's id on this node (S_TASK_ID).
    pub fn task_local_id(&self) -> Result<u32> {
        let id = self.get_int(sys::S_TASK_ID, "local task id")?;
        u32::try_from(id).map_err(|_| Error::new(format!("local task id: invalid value {id}")))
    }

    pub fn task_global_id(&self) -> Result<u32> {
        self.get_u32(sys::S_TASK_GLOBAL_ID, "global task id")
    }

    /// The ended task's status (valid in task_exit).
    pub fn task_exit_status(&self) -> Result<TaskExit> {
        Ok(TaskExit::from_wait_status(
            self.get_int(sys::S_TASK_EXIT_STATUS, "task exit status")?,
        ))
    }

    pub fn restart_count(&self) -> Result<u32> {
        self.get_u32(sys::S_SLURM_RESTART_COUNT, "restart count")
    }

    /// The job's supplementary groups (the groups its tasks run with).
    pub fn supplementary_gids(&self) -> Result<Vec<u32>> {
        let mut gids: *mut libc::gid_t = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: S_JOB_SUPPLEMENTARY_GIDS takes (gid_t **, int *).
        let rc = unsafe {
            sys::spank_get_item(
                self.raw,
                sys::S_JOB_SUPPLEMENTARY_GIDS,
                &mut gids as *mut *mut libc::gid_t,
                &mut count as *mut c_int,
            )
        };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error("supplementary groups", rc));
        }
        let count = usize::try_from(count).unwrap_or(0);
        if gids.is_null() || count == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: Slurm's array of `count` gids.
        Ok(unsafe { std::slice::from_raw_parts(gids, count) }.to_vec())
    }

    /// The command the tasks run.
    pub fn argv(&self) -> Result<Vec<String>> {
        let mut argc: c_int = 0;
        let mut argv: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: S_JOB_ARGV takes (int *, char ***).
        let rc = unsafe {
            sys::spank_get_item(
                self.raw,
                sys::S_JOB_ARGV,
                &mut argc as *mut c_int,
                &mut argv as *mut *mut *mut c_char,
            )
        };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error("job argv", rc));
        }
        let limit = usize::try_from(argc).unwrap_or(0);
        // SAFETY: Slurm's argv array, at most argc entries.
        Ok(unsafe { string_array(argv as *const *const c_char, Some(limit)) })
    }

    /// The job's environment as `NAME=VALUE` strings.
    pub fn job_env(&self) -> Result<Vec<String>> {
        let mut env: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: S_JOB_ENV takes (char ***).
        let rc = unsafe {
            sys::spank_get_item(self.raw, sys::S_JOB_ENV, &mut env as *mut *mut *mut c_char)
        };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error("job environment", rc));
        }
        // SAFETY: NULL-terminated environment array owned by Slurm.
        Ok(unsafe { string_array(env as *const *const c_char, None) })
    }

    /// The running Slurm's version string (e.g. "22.05.8").
    pub fn slurm_version(&self) -> Result<String> {
        let mut text: *const c_char = std::ptr::null();
        // SAFETY: S_SLURM_VERSION takes (char **).
        let rc = unsafe {
            sys::spank_get_item(
                self.raw,
                sys::S_SLURM_VERSION,
                &mut text as *mut *const c_char,
            )
        };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error("Slurm version", rc));
        }
        if text.is_null() {
            return Err(Error::new("Slurm version: Slurm returned NULL"));
        }
        // SAFETY: non-NULL C string owned by Slurm.
        Ok(unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned())
    }

    /// A variable of the job's environment (remote context only).
    pub fn getenv(&self, name: &str) -> Result<Option<String>> {
        let c_name = c_string("environment variable name", name)?;
        let mut size = 1024usize;
        loop {
            let mut buf = vec![0u8; size];
            let len = c_int::try_from(size).unwrap_or(c_int::MAX);
            // SAFETY: buf has `len` writable bytes.
            let rc = unsafe {
                sys::spank_getenv(self.raw, c_name.as_ptr(), buf.as_mut_ptr().cast(), len)
            };
            match rc {
                sys::ESPANK_SUCCESS => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    buf.truncate(end);
                    return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
                }
                sys::ESPANK_ENV_NOEXIST => return Ok(None),
                sys::ESPANK_NOSPACE if size < (1 << 24) => size *= 4,
                other => return Err(spank_error(&format!("getenv {name}"), other)),
            }
        }
    }

    /// Sets a variable in the environment the tasks get (remote context only).
    pub fn setenv(&self, name: &str, value: &str, overwrite: bool) -> Result<()> {
        let c_name = c_string("environment variable name", name)?;
        let c_value = c_string(&format!("value of {name}"), value)?;
        // SAFETY: valid C strings.
        let rc = unsafe {
            sys::spank_setenv(
                self.raw,
                c_name.as_ptr(),
                c_value.as_ptr(),
                c_int::from(overwrite),
            )
        };
        match rc {
            sys::ESPANK_SUCCESS => Ok(()),
            sys::ESPANK_ENV_EXISTS if !overwrite => Ok(()),
            other => Err(spank_error(&format!("setenv {name}"), other)),
        }
    }

    /// Sets a variable that reaches the job's Prolog/Epilog as SPANK_<name> (local and
    /// allocator contexts only).
    pub fn job_control_setenv(&self, name: &str, value: &str, overwrite: bool) -> Result<()> {
        let c_name = c_string("job control variable name", name)?;
        let c_value = c_string(&format!("value of {name}"), value)?;
        // SAFETY: valid C strings.
        let rc = unsafe {
            sys::spank_job_control_setenv(
                self.raw,
                c_name.as_ptr(),
                c_value.as_ptr(),
                c_int::from(overwrite),
            )
        };
        if rc != sys::ESPANK_SUCCESS {
            return Err(spank_error(&format!("job_control_setenv {name}"), rc));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_status() {
        assert_eq!(TaskExit::from_wait_status(3 << 8), TaskExit::Exited(3));
        assert_eq!(TaskExit::from_wait_status(0), TaskExit::Exited(0));
        assert_eq!(
            TaskExit::from_wait_status(9),
            TaskExit::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(
            TaskExit::from_wait_status(11 | 0x80),
            TaskExit::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
    }
}
