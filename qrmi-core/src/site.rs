//! This node's QRMI site, built once per Slurm process from the plugstack line: where its
//! leases live, its name, its QPU GRES in slurm.conf, and how backends are reached (timeouts,
//! proxies, munge, the backend helper). Every context that acquires or releases goes through it, so the backend,
//! lease and retry wiring exists once.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acquire::{self, Node, Retry};
use crate::backend::AcquireContext;
use crate::backend::helper::{self, HelperSettings};
use crate::config::{Config, ConfigError, Resource};
use crate::gres;
use crate::http::HttpConfig;
use crate::jobenv::AcquiredQpu;
use crate::lease::{self, LeaseError, LeaseStore};
use crate::plugstack::PlugstackConfig;

/// Where packaging installs the backend helper (`SPANK_QRMI_BACKEND_HELPER` when building,
/// e.g. /usr/libexec/spank-qrmi/spank-qrmi-backend); unset, it is looked for next to the plugin.
const PACKAGED_HELPER: Option<&str> = option_env!("SPANK_QRMI_BACKEND_HELPER");

pub struct Site {
    pub plugstack: PlugstackConfig,
    /// This host's name (slurmstepd has no other record of its node name, and the job's
    /// environment is the user's).
    pub node: String,
    /// The lease and accounting directory: see [`lease::state_dir_for`].
    pub state_dir: PathBuf,
    pub http: HttpConfig,
    /// slurm.conf and the files it includes, scanned for QPU GRES and the cluster name.
    slurm_conf: Vec<gres::SlurmConfQpus>,
}

impl Site {
    /// Reads slurm.conf (`SLURM_CONF`, default /etc/slurm/slurm.conf) and this host's name.
    pub fn new(plugstack: PlugstackConfig) -> Site {
        let slurm_conf = scan_slurm_conf_files(&slurm_conf_path());
        let node = spank::host::hostname();
        let cluster = slurm_conf
            .iter()
            .find_map(|scan| scan.cluster_name.clone())
            .unwrap_or_else(|| "cluster".to_string());
        // Named after the host: several slurmd of one cluster on one host therefore share it,
        // which is safe as job ids are unique within a cluster (the leases there are the job's
        // on that host, reused by its steps and released once).
        let state_dir = lease::state_dir_for(plugstack.state_dir.as_deref(), &cluster, &node);
        let http = http_config(&plugstack);
        Site {
            plugstack,
            node,
            state_dir,
            http,
            slurm_conf,
        }
    }

    /// This node's `qpu` GRES as slurm.conf declares them (empty when it has none), with
    /// `in_hostlist(expression, node)` deciding which NodeName line is this node's. Count-only
    /// GRES leave no trace in a job's environment, so only on such nodes can a job without
    /// --qpu hold a QPU; elsewhere no controller call is made.
    pub fn node_qpu_gres(&self, in_hostlist: impl Fn(&str, &str) -> bool) -> Vec<gres::QpuGres> {
        self.slurm_conf
            .iter()
            .flat_map(|scan| scan.nodes.iter())
            .find(|(expr, _)| in_hostlist(expr, &self.node))
            .map(|(_, line_gres)| gres::parse_qpu_gres(line_gres))
            .unwrap_or_default()
    }

    /// qrmi_config.json as the plugstack line names it (None: the line names none).
    pub fn load_config(&self) -> Option<Result<Config, ConfigError>> {
        self.plugstack.config_path.as_deref().map(Config::load)
    }

    pub fn open_store(&self) -> Result<LeaseStore, LeaseError> {
        LeaseStore::open(&self.state_dir)
    }

    /// How backends are reached from here: the helper executable (see [`helper::locate`]),
    /// HTTP settings, and munge for pasqal-local. `warden_munge` unset: send a credential
    /// whenever the node has munge, as upstream's munge build does (Pasqal's warden authorises
    /// by munge UID, and QRMI in the job sends one too).
    pub fn helper_settings(&self) -> HelperSettings {
        // As loaded (PluginDir or the path plugstack.conf gives), then where a symlink leads.
        let loaded = spank::host::loaded_from();
        let real = loaded
            .as_deref()
            .and_then(|p| std::fs::canonicalize(p).ok());
        let mut plugin_dirs: Vec<PathBuf> = Vec::new();
        for dir in [loaded, real].into_iter().flatten() {
            if let Some(dir) = dir.parent().map(Path::to_path_buf)
                && !plugin_dirs.contains(&dir)
            {
                plugin_dirs.push(dir);
            }
        }
        HelperSettings {
            program: helper::locate(
                self.plugstack.backend_helper.as_deref(),
                PACKAGED_HELPER,
                &plugin_dirs,
                Path::is_file,
            ),
            http: self.http.clone(),
            munge: self
                .plugstack
                .warden_munge
                .unwrap_or_else(crate::munge::available),
        }
    }

    /// Acquires `names` for `job` (all or nothing), recording leases in `store`.
    pub fn acquire(
        &self,
        config: &Config,
        store: &LeaseStore,
        job: &AcquireContext,
        names: &[String],
    ) -> Result<Vec<AcquiredQpu>, String> {
        let settings = self.helper_settings();
        let make = |resource: &Resource| Ok(helper::backend_for(resource, &settings));
        acquire::acquire_all(
            config,
            &self.lease_node(store),
            job,
            names,
            &make,
            Retry::default(),
        )
    }

    /// Releases what the job holds here (root): from the batch step's exit, and from the job's
    /// keeper once Slurm says the job has ended. Ok(released count), or why some release
    /// failed; failed releases stay recorded (release_failed) for a later attempt, released
    /// leases are removed.
    pub fn release_job_here(&self, job_id: u32) -> Result<usize, String> {
        let store = self.open_store().map_err(|e| e.to_string())?;
        if store.leases(job_id).map_err(|e| e.to_string())?.is_empty() {
            return Ok(0);
        }
        let config = match self.load_config() {
            Some(Ok(config)) => Some(config),
            Some(Err(e)) => {
                tracing::error!("job {job_id}: {e}");
                None
            }
            None => None,
        };
        let settings = self.helper_settings();
        let make = |resource: &Resource| Ok(helper::backend_for(resource, &settings));
        let (released, failed) = acquire::release_job(
            config.as_ref(),
            &self.lease_node(&store),
            job_id,
            &make,
            Retry::default(),
        );
        if failed > 0 {
            return Err(format!(
                "job {job_id}: {failed} QPU release(s) failed and stay recorded in {} ({released} released)",
                self.state_dir.display()
            ));
        }
        if released > 0 {
            tracing::info!("job {job_id}: released {released} QPU(s)");
        }
        Ok(released)
    }

    fn lease_node<'a>(&'a self, store: &'a LeaseStore) -> Node<'a> {
        Node {
            name: &self.node,
            store,
        }
    }
}

/// Where this process's Slurm configuration is (slurmstepd's own environment, not the job's).
fn slurm_conf_path() -> PathBuf {
    std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/slurm/slurm.conf"))
}

/// `main` and the files it includes (at most 16), scanned for QPU GRES and the cluster name.
fn scan_slurm_conf_files(main: &Path) -> Vec<gres::SlurmConfQpus> {
    let mut scans = Vec::new();
    let mut files = vec![main.to_path_buf()];
    let mut seen = 0;
    while let Some(path) = files.pop() {
        seen += 1;
        if seen > 16 {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let scan = gres::scan_slurm_conf(&text);
        for include in &scan.includes {
            let include = PathBuf::from(include);
            files.push(match (include.is_absolute(), main.parent()) {
                (false, Some(dir)) => dir.join(include),
                _ => include,
            });
        }
        scans.push(scan);
    }
    scans
}

/// The HTTP settings plugstack.conf gives backends: timeouts and the `--env:` proxies.
fn http_config(plugstack: &PlugstackConfig) -> HttpConfig {
    let mut http = HttpConfig {
        connect_timeout: Duration::from_secs_f64(
            plugstack.http_connect_timeout_secs.unwrap_or(5.0),
        ),
        timeout: Duration::from_secs_f64(plugstack.http_timeout_secs.unwrap_or(30.0)),
        ..HttpConfig::default()
    };
    http.https_proxy = plugstack.proxy_env("https_proxy").map(str::to_string);
    http.http_proxy = plugstack.proxy_env("http_proxy").map(str::to_string);
    http.no_proxy = plugstack
        .proxy_env("no_proxy")
        .map(|list| list.split(',').map(|h| h.trim().to_string()).collect())
        .unwrap_or_default();
    http
}
