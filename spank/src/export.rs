//! What `spank_plugin!` expands to calls into: the per-plugin state cell, panic containment
//! and the failure policy. Not for direct use.
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once};
use std::time::Instant;

use slurm_sys as sys;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::handle::Spank;
use crate::plugin::Plugin;
use crate::policy::{Hook, OnError, on_error};

/// The plugin instance of this process plus an error deferred to task_init.
pub struct PluginCell<P> {
    inner: Mutex<Option<State<P>>>,
}

pub struct State<P> {
    pub plugin: P,
    deferred: Option<Error>,
    /// `Plugin::init` ran in this process. Slurm does not call slurm_spank_init before
    /// job_prolog/job_epilog in every release, so those hooks run it first when needed.
    initialized: bool,
}

impl<P: Plugin> PluginCell<P> {
    pub const fn new() -> Self {
        PluginCell {
            inner: Mutex::new(None),
        }
    }

    /// Runs `f` on the state, creating it on first use. A panic in an earlier callback poisons
    /// the mutex; the poison is cleared so that callback is the only one that fails.
    fn with<R>(&self, f: impl FnOnce(&mut State<P>) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| {
            self.inner.clear_poison();
            poisoned.into_inner()
        });
        f(guard.get_or_insert_with(|| State {
            plugin: P::default(),
            deferred: None,
            initialized: false,
        }))
    }
}

impl<P: Plugin> Default for PluginCell<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Implemented by `spank_plugin!` to reach the plugin's static cell.
pub trait Exported: Plugin {
    fn cell() -> &'static PluginCell<Self>;
}

/// `"name"` → `b"name\0"` as a fixed array, for the `plugin_name` symbol.
pub const fn c_name<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    assert!(bytes.len() + 1 == N, "array must hold the name plus a NUL");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0, "plugin name must not contain NUL");
        out[i] = bytes[i];
        i += 1;
    }
    out
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps panic text for the error message instead of printing it to a daemon's stderr.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let text = info.to_string();
            LAST_PANIC.with(|slot| *slot.borrow_mut() = Some(text));
        }));
    });
}

fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let described = LAST_PANIC.with(|slot| slot.borrow_mut().take());
    let message = described.unwrap_or_else(|| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    });
    Error::new(format!("internal error (panic): {message}"))
}

fn run_contained<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(panic_error(payload)),
    }
}

/// Copies plugstack.conf arguments; NULL entries are skipped.
///
/// # Safety
/// `argv` must be NULL or hold `argc` entries, each NULL or a valid C string.
unsafe fn plugstack_args(argc: c_int, argv: *mut *mut c_char) -> Vec<String> {
    let count = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (0..count)
        .filter_map(|i| {
            // SAFETY: i < argc per the caller's contract.
            let arg = unsafe { *argv.add(i) };
            (!arg.is_null())
                // SAFETY: non-NULL C string from Slurm.
                .then(|| {
                    unsafe { CStr::from_ptr(arg) }
                        .to_string_lossy()
                        .into_owned()
                })
        })
        .collect()
}

/// Logs the error and turns it into the return code the policy allows.
fn finish<P: Plugin>(
    hook: Hook,
    context: Context,
    state: &mut State<P>,
    result: Result<()>,
) -> c_int {
    let Err(error) = result else { return 0 };
    match on_error(hook, context) {
        OnError::Fail => {
            tracing::error!("{error}");
            if context == Context::Remote {
                // In task_init the process is the task: its stderr is the job's, so the user
                // sees why in their own srun output or batch error file.
                eprintln!("{}: {error}", P::NAME);
            }
            -1
        }
        OnError::DeferToTask => {
            tracing::error!("{}: {error} (the job's tasks will fail)", hook.name());
            if state.deferred.is_none() {
                state.deferred = Some(error);
            }
            0
        }
        OnError::LogOnly => {
            tracing::error!("{} in {} context: {error}", hook.name(), context.name());
            0
        }
    }
}

/// Installs the panic hook and logging (the first callback of every process comes here),
/// registers options (only possible inside slurm_spank_init) and calls
/// `Plugin::init` with the plugstack.conf arguments.
///
/// # Safety
/// `sp`, `argc` and `argv` as Slurm passed them to the running callback.
unsafe fn initialize<P: Exported>(
    state: &mut State<P>,
    sp: sys::spank_t,
    context: Context,
    register_options: bool,
    argc: c_int,
    argv: *mut *mut c_char,
) -> Result<()> {
    install_panic_hook();
    crate::log::install(P::NAME);
    state.initialized = true;
    if register_options && context.parses_options() {
        // SAFETY: `sp` is the handle of the running init callback.
        unsafe { crate::options::register(sp, P::OPTIONS, option_callback::<P>)? };
    }
    // SAFETY: as promised by our caller.
    let mut args = unsafe { plugstack_args(argc, argv) };
    if let Some(problem) = crate::log::take_level_argument(&mut args) {
        // Said once, where the admin reads it (slurmd reads plugstack.conf when it starts);
        // in a job's processes it would reach the user's terminal on every srun.
        if context == Context::Slurmd {
            tracing::error!("plugstack.conf: {problem}; the default level (info) is used");
        } else {
            tracing::debug!("plugstack.conf: {problem}; the default level (info) is used");
        }
    }
    // SAFETY: `sp` is the handle of this callback.
    let handle = unsafe { Spank::from_raw(sp) };
    state.plugin.init(&handle, &args)?;
    // Evidence for admins and tests that the plugin is active, at debug level only.
    if context == Context::Remote {
        let job = handle.job_id().map(|j| j.to_string()).unwrap_or_default();
        let step = handle.step_id().map(|s| s.to_string()).unwrap_or_default();
        tracing::debug!("loaded in remote context (job {job} step {step})");
    } else {
        tracing::debug!("loaded in {} context", context.name());
    }
    Ok(())
}

/// `slurm_spank_init`.
///
/// # Safety
/// Called by Slurm with its handle and plugstack arguments.
pub unsafe fn init<P: Exported>(sp: sys::spank_t, argc: c_int, argv: *mut *mut c_char) -> c_int {
    let context = Context::current();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        P::cell().with(|state| {
            // SAFETY: forwarded from Slurm.
            let result =
                run_contained(|| unsafe { initialize(state, sp, context, true, argc, argv) });
            finish(Hook::Init, context, state, result)
        })
    }));
    log_hook_time(Hook::Init, context, started);
    outcome.unwrap_or(-1)
}

/// The cost each plugin adds to a job, per callback, for admins and `tests/bench/run.sh`: one
/// debug line (off unless `log_level=debug`), so the measurement is the plugin's own clock.
fn log_hook_time(hook: Hook, context: Context, started: Instant) {
    tracing::debug!(
        "hook {} in {} context took {} us",
        hook.name(),
        context.name(),
        started.elapsed().as_micros()
    );
}

/// Every other hook. `task_init` first fails with an error deferred from before the fork.
///
/// # Safety
/// Called by Slurm with its handle and plugstack arguments.
pub unsafe fn call<P: Exported>(
    hook: Hook,
    sp: sys::spank_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let context = Context::current();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        P::cell().with(|state| {
            let result = run_contained(|| {
                if !state.initialized {
                    // SAFETY: forwarded from Slurm.
                    unsafe { initialize(state, sp, context, false, argc, argv)? };
                }
                if matches!(hook, Hook::TaskInit | Hook::TaskInitPrivileged)
                    && let Some(error) = &state.deferred
                {
                    return Err(error.clone());
                }
                // SAFETY: `sp` is the handle of this callback.
                let handle = unsafe { Spank::from_raw(sp) };
                let plugin = &mut state.plugin;
                match hook {
                    Hook::Init => Ok(()),
                    Hook::InitPostOpt => plugin.init_post_opt(&handle),
                    Hook::LocalUserInit => plugin.local_user_init(&handle),
                    Hook::UserInit => plugin.user_init(&handle),
                    Hook::TaskInitPrivileged => plugin.task_init_privileged(&handle),
                    Hook::TaskInit => plugin.task_init(&handle),
                    Hook::TaskPostFork => plugin.task_post_fork(&handle),
                    Hook::TaskExit => plugin.task_exit(&handle),
                    Hook::Exit => plugin.exit(&handle),
                    Hook::JobProlog => plugin.job_prolog(&handle),
                    Hook::JobEpilog => plugin.job_epilog(&handle),
                    Hook::SlurmdExit => plugin.slurmd_exit(&handle),
                }
            });
            finish(hook, context, state, result)
        })
    }));
    log_hook_time(hook, context, started);
    outcome.unwrap_or(-1)
}

/// The `spank_opt_cb_f` registered for every option of `P`; `val` indexes `P::OPTIONS`.
pub unsafe extern "C" fn option_callback<P: Exported>(
    val: c_int,
    optarg: *const c_char,
    remote: c_int,
) -> c_int {
    let context = Context::current();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        P::cell().with(|state| {
            let result = run_contained(|| {
                let spec = usize::try_from(val)
                    .ok()
                    .and_then(|i| P::OPTIONS.get(i))
                    .ok_or_else(|| {
                        Error::new(format!("option callback with unknown index {val}"))
                    })?;
                let value = if optarg.is_null() {
                    None
                } else {
                    // SAFETY: non-NULL C string from Slurm's option parser.
                    Some(
                        unsafe { CStr::from_ptr(optarg) }
                            .to_string_lossy()
                            .into_owned(),
                    )
                };
                state
                    .plugin
                    .option(spec.name, value.as_deref(), remote != 0)
                    .map_err(|e| e.context(format_args!("--{}", spec.name)))
            });
            // An option refused in slurmstepd fails the tasks, like an init error there.
            finish(Hook::Init, context, state, result)
        })
    }));
    outcome.unwrap_or(-1)
}

/// Declares a SPANK plugin: exports `plugin_name`, `plugin_type`, `plugin_version` (from the
/// headers this build used), `slurm_spank_init` and exactly the hooks listed. List `task_init`
/// whenever a hook can fail in slurmstepd before the fork: an error deferred there fails the
/// tasks only from task_init (or task_init_privileged).
///
/// ```ignore
/// spank::spank_plugin!(MyPlugin, "spank_mine", [init_post_opt, task_init, task_exit]);
/// ```
#[macro_export]
macro_rules! spank_plugin {
    ($ty:ty, $name:literal, [$($hook:ident),* $(,)?]) => {
        #[unsafe(no_mangle)]
        pub static plugin_name: [u8; $name.len() + 1] = $crate::export::c_name($name);
        #[unsafe(no_mangle)]
        pub static plugin_type: [u8; 6] = *b"spank\0";
        #[unsafe(no_mangle)]
        pub static plugin_version: ::std::ffi::c_uint = $crate::sys::SLURM_VERSION_NUMBER;

        static __SPANK_PLUGIN_CELL: $crate::export::PluginCell<$ty> =
            $crate::export::PluginCell::new();

        impl $crate::export::Exported for $ty {
            fn cell() -> &'static $crate::export::PluginCell<Self> {
                &__SPANK_PLUGIN_CELL
            }
        }

        const _: () = assert!(
            $crate::export::str_eq(<$ty as $crate::Plugin>::NAME, $name),
            "Plugin::NAME must equal the exported plugin name"
        );

        /// # Safety
        /// Called by Slurm.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn slurm_spank_init(
            sp: $crate::sys::spank_t,
            ac: ::std::ffi::c_int,
            av: *mut *mut ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded unchanged from Slurm.
            unsafe { $crate::export::init::<$ty>(sp, ac, av) }
        }

        $( $crate::__spank_hook!($ty, $hook); )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __spank_hook {
    ($ty:ty, init_post_opt) => {
        $crate::__spank_hook!($ty, slurm_spank_init_post_opt, InitPostOpt);
    };
    ($ty:ty, local_user_init) => {
        $crate::__spank_hook!($ty, slurm_spank_local_user_init, LocalUserInit);
    };
    ($ty:ty, user_init) => {
        $crate::__spank_hook!($ty, slurm_spank_user_init, UserInit);
    };
    ($ty:ty, task_init_privileged) => {
        $crate::__spank_hook!($ty, slurm_spank_task_init_privileged, TaskInitPrivileged);
    };
    ($ty:ty, task_init) => {
        $crate::__spank_hook!($ty, slurm_spank_task_init, TaskInit);
    };
    ($ty:ty, task_post_fork) => {
        $crate::__spank_hook!($ty, slurm_spank_task_post_fork, TaskPostFork);
    };
    ($ty:ty, task_exit) => {
        $crate::__spank_hook!($ty, slurm_spank_task_exit, TaskExit);
    };
    ($ty:ty, exit) => {
        $crate::__spank_hook!($ty, slurm_spank_exit, Exit);
    };
    ($ty:ty, job_prolog) => {
        $crate::__spank_hook!($ty, slurm_spank_job_prolog, JobProlog);
    };
    ($ty:ty, job_epilog) => {
        $crate::__spank_hook!($ty, slurm_spank_job_epilog, JobEpilog);
    };
    ($ty:ty, slurmd_exit) => {
        $crate::__spank_hook!($ty, slurm_spank_slurmd_exit, SlurmdExit);
    };
    ($ty:ty, $symbol:ident, $hook:ident) => {
        /// # Safety
        /// Called by Slurm.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $symbol(
            sp: $crate::sys::spank_t,
            ac: ::std::ffi::c_int,
            av: *mut *mut ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded unchanged from Slurm.
            unsafe { $crate::export::call::<$ty>($crate::Hook::$hook, sp, ac, av) }
        }
    };
}

/// Const string equality, for the NAME check in `spank_plugin!`.
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_name_appends_nul() {
        let name: [u8; 6] = c_name("frame");
        assert_eq!(&name, b"frame\0");
        assert!(str_eq("a", "a") && !str_eq("a", "b") && !str_eq("a", "ab"));
    }

    #[derive(Default)]
    struct Counter {
        calls: u32,
    }
    impl Plugin for Counter {
        const NAME: &'static str = "counter";
    }

    #[test]
    fn poisoned_cell_recovers_and_keeps_state() {
        let cell: &'static PluginCell<Counter> = Box::leak(Box::new(PluginCell::new()));
        cell.with(|state| state.plugin.calls = 1);
        let _ = std::thread::spawn(move || cell.with(|_| panic!("boom"))).join();
        assert!(cell.inner.is_poisoned());
        let calls = cell.with(|state| {
            assert!(!cell.inner.is_poisoned());
            state.plugin.calls += 1;
            state.plugin.calls
        });
        assert_eq!(calls, 2);
    }
}
