//! libslurm beyond the SPANK API, answered as plain facts: a job's record ([`load_job`], one
//! `slurm_load_job` RPC: spank_qrmi's one controller call per step and node, as count-only
//! GRES leaves nothing in a job's environment), whether a job still runs ([`job_runs`], for a
//! node without squeue) and hostlist membership ([`hostlist_contains`]). The Slurm release's
//! API differences are gated on slurm-sys's `slurm_ge_MAJOR_MINOR` cfgs (see build.rs).
use std::ffi::{CStr, CString, c_char};

use slurm_sys as sys;

/// slurm.h's SHOW_ALL (jobs of hidden partitions too) and SHOW_LOCAL (this cluster only): bits 0
/// and 4 in every release, but from 24.11 on written as `SLURM_BIT(n)`, a macro bindgen cannot
/// evaluate. Without SHOW_LOCAL, slurm_load_job first asks the controller for the federation
/// (a second RPC, REQUEST_FED_INFO, per step and node); the job runs here, so this cluster's
/// record is the one we need, federated or not.
const SHOW_ALL: u16 = 0x0001;
const SHOW_LOCAL: u16 = 0x0010;
const SHOW_FLAGS: u16 = SHOW_ALL | SHOW_LOCAL;

/// What a plugin needs to know about a job on one of its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFacts {
    /// None = unlimited.
    pub time_limit_minutes: Option<u32>,
    /// The job's GRES/TRES request per node, e.g. "gres:qpu:ibm_torino:1".
    pub tres_per_node: String,
    /// The GRES allocated on this node, e.g. "qpu:ibm_torino:1(IDX:0)".
    pub gres_here: String,
}

fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL C string owned by the job info message.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

fn slurm_error_text() -> String {
    // SAFETY: plain getters of Slurm's errno and its static message.
    unsafe {
        let errno = *libc::__errno_location();
        let text = sys::slurm_strerror(errno);
        if text.is_null() {
            format!("error {errno}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

#[cfg(slurm_ge_26_05)]
unsafe fn load(resp: *mut *mut sys::job_info_msg_t, job_id: u32) -> i32 {
    let step = sys::slurm_step_id_t {
        job_id,
        step_het_comp: sys::NO_VAL,
        step_id: sys::NO_VAL,
        ..Default::default()
    };
    // SAFETY: per the caller's contract.
    unsafe { sys::slurm_load_job(resp, step, SHOW_FLAGS) }
}

#[cfg(not(slurm_ge_26_05))]
unsafe fn load(resp: *mut *mut sys::job_info_msg_t, job_id: u32) -> i32 {
    // SAFETY: per the caller's contract.
    unsafe { sys::slurm_load_job(resp, job_id, SHOW_FLAGS) }
}

/// Whether `node` is in the Slurm hostlist expression `nodes` (e.g. "q[1-2],x3").
pub fn hostlist_contains(nodes: &str, node: &str) -> bool {
    node_index(nodes, node).is_some()
}

/// Position of `node` in the job's node list (the order of gres_detail_str).
fn node_index(nodes: &str, node: &str) -> Option<usize> {
    let c_nodes = CString::new(nodes).ok()?;
    let c_node = CString::new(node).ok()?;
    // SAFETY: hostlist functions on valid C strings; the list is destroyed before return.
    unsafe {
        let list = sys::slurm_hostlist_create(c_nodes.as_ptr());
        if list.is_null() {
            return None;
        }
        let index = sys::slurm_hostlist_find(list, c_node.as_ptr());
        sys::slurm_hostlist_destroy(list);
        usize::try_from(index).ok()
    }
}

/// slurm.h's job_states (stable since 15.08): the base state in the low byte, flags above.
const JOB_STATE_BASE: u32 = 0xff;
const JOB_RUNNING: u32 = 1;
const JOB_SUSPENDED: u32 = 2;
const JOB_COMPLETING: u32 = 0x8000;
/// slurm_errno.h's ESLURM_INVALID_JOB_ID: the controller no longer knows the job.
const ESLURM_INVALID_JOB_ID: i32 = 2017;

/// Whether the job still runs (running or suspended, not completing), as the controller says.
/// Ok(false) when it ended, went back to pending, or is no longer known; Err without an answer.
pub fn job_runs(job_id: u32) -> Result<bool, String> {
    let mut resp: *mut sys::job_info_msg_t = std::ptr::null_mut();
    // SAFETY: resp receives a message we free below.
    let rc = unsafe { load(&mut resp, job_id) };
    if rc != 0 || resp.is_null() {
        // SAFETY: reads this thread's errno.
        if unsafe { *libc::__errno_location() } == ESLURM_INVALID_JOB_ID {
            return Ok(false);
        }
        return Err(format!("cannot load job {job_id}: {}", slurm_error_text()));
    }
    // SAFETY: a valid message from slurm_load_job; read, then freed once.
    unsafe {
        let msg = &*resp;
        let records: &[sys::slurm_job_info_t] = if msg.job_array.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(msg.job_array, msg.record_count as usize)
        };
        let runs = records
            .iter()
            .find(|job| job.job_id == job_id)
            .is_some_and(|job| {
                let base = job.job_state & JOB_STATE_BASE;
                (base == JOB_RUNNING || base == JOB_SUSPENDED)
                    && job.job_state & JOB_COMPLETING == 0
            });
        sys::slurm_free_job_info_msg(resp);
        Ok(runs)
    }
}

/// Asks the controller about `job_id` (one RPC).
pub fn load_job(job_id: u32, node: &str) -> Result<JobFacts, String> {
    let mut resp: *mut sys::job_info_msg_t = std::ptr::null_mut();
    // SAFETY: resp receives a message we free below.
    let rc = unsafe { load(&mut resp, job_id) };
    if rc != 0 || resp.is_null() {
        return Err(format!(
            "cannot load job {job_id} from slurmctld: {}",
            slurm_error_text()
        ));
    }
    // SAFETY: a valid message from slurm_load_job; read, then freed once.
    let facts = unsafe {
        let msg = &*resp;
        let records: &[sys::slurm_job_info_t] = if msg.job_array.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(msg.job_array, msg.record_count as usize)
        };
        let facts = records.iter().find(|job| job.job_id == job_id).map(|job| {
            let index = node_index(&text(job.nodes), node);
            let details: &[*mut c_char] = if job.gres_detail_str.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(job.gres_detail_str, job.gres_detail_cnt as usize)
            };
            JobFacts {
                time_limit_minutes: match job.time_limit {
                    sys::INFINITE | sys::NO_VAL => None,
                    minutes => Some(minutes),
                },
                tres_per_node: text(job.tres_per_node),
                gres_here: index
                    .and_then(|i| details.get(i))
                    .map(|p| text(*p))
                    .unwrap_or_default(),
            }
        });
        sys::slurm_free_job_info_msg(resp);
        facts
    };
    facts.ok_or_else(|| format!("slurmctld returned no record for job {job_id}"))
}
