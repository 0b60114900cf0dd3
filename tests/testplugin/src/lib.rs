//! A plugin for testing the spank layer: it reports every item it can read, and panics or
//! fails in the hook named by its plugstack arguments `panic_in=HOOK` / `fail_in=HOOK`.
use spank::args::PluginArgs;
use spank::{Error, OptionSpec, Plugin, Result, Spank};

#[derive(Default)]
pub struct TestPlugin {
    panic_in: Option<String>,
    fail_in: Option<String>,
    value: Option<String>,
    flag: bool,
    calls: u32,
}

fn show<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("err({e})"),
    }
}

impl TestPlugin {
    fn hook(&mut self, name: &str, sp: &Spank) -> Result<()> {
        self.calls += 1;
        tracing::info!(
            "hook={name} ctx={} calls={} value={:?} flag={} job={} step={} array={} task={} \
             global={} exit={} uid={} gid={} restart={} argv={} version={}",
            sp.context().name(),
            self.calls,
            self.value,
            self.flag,
            show(sp.job_id()),
            show(sp.step_id()),
            show(sp.array()),
            show(sp.task_local_id()),
            show(sp.task_global_id()),
            show(sp.task_exit_status()),
            show(sp.uid()),
            show(sp.gid()),
            show(sp.restart_count()),
            show(sp.argv()),
            show(sp.slurm_version()),
        );
        if self.panic_in.as_deref() == Some(name) {
            panic!("requested panic in {name}");
        }
        if self.fail_in.as_deref() == Some(name) {
            return Err(Error::new(format!("requested failure in {name}")));
        }
        if name == "task_init" {
            let seen = sp.getenv("TESTPLUGIN_INPUT")?.unwrap_or_default();
            sp.setenv("TESTPLUGIN_SEEN", &format!("{seen}+{:?}", self.value), true)?;
            sp.setenv("TESTPLUGIN_KEEP", "plugin", false)?;
        }
        Ok(())
    }
}

impl Plugin for TestPlugin {
    const NAME: &'static str = "spank_testplugin";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::with_arg("test-value", "VALUE", "a value for the test plugin"),
        OptionSpec::flag("test-flag", "a flag for the test plugin"),
    ];

    fn option(&mut self, name: &'static str, value: Option<&str>, _remote: bool) -> Result<()> {
        match name {
            "test-value" if value == Some("bad") => Err(Error::new("'bad' is refused")),
            "test-value" if value == Some("panic") => panic!("option panic"),
            "test-value" => {
                self.value = value.map(str::to_string);
                Ok(())
            }
            _ => {
                self.flag = true;
                Ok(())
            }
        }
    }

    fn init(&mut self, sp: &Spank, args: &[String]) -> Result<()> {
        // log_level= is the layer's: it never reaches a plugin.
        let args = PluginArgs::parse(Self::NAME, args, &["panic_in", "fail_in"])?;
        self.panic_in = args.get("panic_in").map(str::to_string);
        self.fail_in = args.get("fail_in").map(str::to_string);
        tracing::debug!("debug line");
        self.hook("init", sp)
    }
    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        self.hook("init_post_opt", sp)
    }
    fn local_user_init(&mut self, sp: &Spank) -> Result<()> {
        self.hook("local_user_init", sp)
    }
    fn user_init(&mut self, sp: &Spank) -> Result<()> {
        self.hook("user_init", sp)
    }
    fn task_init_privileged(&mut self, sp: &Spank) -> Result<()> {
        self.hook("task_init_privileged", sp)
    }
    fn task_init(&mut self, sp: &Spank) -> Result<()> {
        self.hook("task_init", sp)
    }
    fn task_post_fork(&mut self, sp: &Spank) -> Result<()> {
        self.hook("task_post_fork", sp)
    }
    fn task_exit(&mut self, sp: &Spank) -> Result<()> {
        self.hook("task_exit", sp)
    }
    fn exit(&mut self, sp: &Spank) -> Result<()> {
        self.hook("exit", sp)
    }
    fn job_epilog(&mut self, sp: &Spank) -> Result<()> {
        self.hook("job_epilog", sp)
    }
}

spank::spank_plugin!(
    TestPlugin,
    "spank_testplugin",
    [
        init_post_opt,
        local_user_init,
        user_init,
        task_init_privileged,
        task_init,
        task_post_fork,
        task_exit,
        exit,
        job_epilog
    ]
);
