//! The resource types of qrmi_config.json and what the plugin knows of each: one table,
//! [`TYPE_FACTS`], with a row per type.
use std::fmt;

/// The type strings QRMI 0.26 knows, and `Other` for any other string: QRMI skips a type it
/// does not know (with a warning) and its default acquisition is a random token, so we pass
/// such a resource through the same way (the string itself is in [`Resource::type_name`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ResourceType {
    IbmQuantumSystem,
    IbmQuantumComputeService,
    QiskitRuntimeService,
    PasqalCloud,
    PasqalLocal,
    IqmServer,
    AliceBobFelis,
    Oqtopus,
    Other,
}

/// What the plugin knows of one resource type: one row per type in [`TYPE_FACTS`], read by every
/// question about a type, so adding a type is adding a row.
pub(super) struct TypeFacts {
    pub(super) kind: ResourceType,
    /// The `type` string of qrmi_config.json.
    pub(super) name: &'static str,
    /// Acquisition creates a session at the backend (released at job end).
    pub(super) has_session: bool,
    /// Key prefix of the IBM types (`QRMI_IBM_QCS_`, `QRMI_IBM_QRS_`, `QRMI_IBM_QS_`).
    pub(super) ibm_prefix: Option<&'static str>,
    /// Whether there is a status call to make at all, and whether we make it by default.
    /// Upstream checks every type's status before acquiring: so do we by default (an offline
    /// backend fails the job), except where there is no check to make.
    pub(super) has_status_check: bool,
    pub(super) default_status_check: bool,
    /// Keys that must be present and non-empty. pasqal-local: one of two keys, checked
    /// separately (see [`missing_keys`]). pasqal-cloud and alice-bob-felis: upstream can take
    /// the values from elsewhere (the user's ~/.pasqal/config; unprefixed variables), so their
    /// keys are only recommended.
    pub(super) required_keys: &'static [&'static str],
    /// Keys that upstream reads for this type but can also find elsewhere: a warning if absent.
    pub(super) recommended_keys: &'static [&'static str],
    /// Keys whose value must be an http(s) URL when present.
    pub(super) url_keys: &'static [&'static str],
    /// URL keys only the job's QRMI calls: a bad value there is QRMI's to report (a warning
    /// here), as upstream's example config has placeholders in them.
    pub(super) job_only_url_keys: &'static [&'static str],
    /// Keys a job may set for itself even when the site's config sets them (by default; a
    /// resource's `user_keys` adds more).
    pub(super) default_user_keys: &'static [&'static str],
}

/// Indexed by `ResourceType as usize`: the order is checked when compiling, below.
pub(super) const TYPE_FACTS: [TypeFacts; 9] = [
    TypeFacts {
        kind: ResourceType::IbmQuantumSystem,
        name: "ibm-quantum-system",
        has_session: false,
        ibm_prefix: Some("QRMI_IBM_QS_"),
        has_status_check: true,
        default_status_check: true,
        required_keys: &[
            "QRMI_IBM_QS_ENDPOINT",
            "QRMI_IBM_QS_IAM_ENDPOINT",
            "QRMI_IBM_QS_IAM_APIKEY",
            "QRMI_IBM_QS_SERVICE_CRN",
        ],
        recommended_keys: &[],
        url_keys: &[
            "QRMI_IBM_QS_ENDPOINT",
            "QRMI_IBM_QS_IAM_ENDPOINT",
            "QRMI_IBM_QS_S3_ENDPOINT",
            "QRMI_IBM_QS_S3_ENDPOINT_FOR_QSAPI",
        ],
        job_only_url_keys: &[
            "QRMI_IBM_QS_S3_ENDPOINT",
            "QRMI_IBM_QS_S3_ENDPOINT_FOR_QSAPI",
        ],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::IbmQuantumComputeService,
        name: "ibm-quantum-compute-service",
        has_session: true,
        ibm_prefix: Some("QRMI_IBM_QCS_"),
        has_status_check: true,
        default_status_check: true,
        required_keys: &[
            "QRMI_IBM_QCS_ENDPOINT",
            "QRMI_IBM_QCS_IAM_ENDPOINT",
            "QRMI_IBM_QCS_IAM_APIKEY",
            "QRMI_IBM_QCS_SERVICE_CRN",
        ],
        recommended_keys: &[],
        url_keys: &["QRMI_IBM_QCS_ENDPOINT", "QRMI_IBM_QCS_IAM_ENDPOINT"],
        job_only_url_keys: &[],
        default_user_keys: &["QRMI_IBM_QCS_SESSION_MODE", "QRMI_IBM_QCS_SESSION_MAX_TTL"],
    },
    TypeFacts {
        kind: ResourceType::QiskitRuntimeService,
        name: "qiskit-runtime-service",
        has_session: true,
        ibm_prefix: Some("QRMI_IBM_QRS_"),
        has_status_check: true,
        default_status_check: true,
        required_keys: &[
            "QRMI_IBM_QRS_ENDPOINT",
            "QRMI_IBM_QRS_IAM_ENDPOINT",
            "QRMI_IBM_QRS_IAM_APIKEY",
            "QRMI_IBM_QRS_SERVICE_CRN",
        ],
        recommended_keys: &[],
        url_keys: &["QRMI_IBM_QRS_ENDPOINT", "QRMI_IBM_QRS_IAM_ENDPOINT"],
        job_only_url_keys: &[],
        default_user_keys: &["QRMI_IBM_QRS_SESSION_MODE", "QRMI_IBM_QRS_SESSION_MAX_TTL"],
    },
    TypeFacts {
        kind: ResourceType::PasqalCloud,
        name: "pasqal-cloud",
        has_session: false,
        ibm_prefix: None,
        has_status_check: true,
        default_status_check: true,
        required_keys: &[],
        recommended_keys: &["QRMI_PASQAL_CLOUD_PROJECT_ID"],
        url_keys: &[
            "QRMI_PASQAL_CLOUD_AUTH_ENDPOINT",
            "QRMI_PASQAL_CLOUD_BASE_URL",
        ],
        job_only_url_keys: &["QRMI_PASQAL_CLOUD_AUTH_ENDPOINT"],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::PasqalLocal,
        name: "pasqal-local",
        has_session: true,
        ibm_prefix: None,
        has_status_check: true,
        default_status_check: true,
        required_keys: &[],
        recommended_keys: &[],
        url_keys: &["QRMI_WARDEN_URL", "QRMI_URL"],
        job_only_url_keys: &[],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::IqmServer,
        name: "iqm-server",
        has_session: false,
        ibm_prefix: None,
        has_status_check: true,
        default_status_check: true,
        required_keys: &["QRMI_IQM_ISA_ENDPOINT", "QRMI_IQM_ISA_TOKEN"],
        recommended_keys: &[],
        url_keys: &["QRMI_IQM_ISA_ENDPOINT"],
        job_only_url_keys: &[],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::AliceBobFelis,
        name: "alice-bob-felis",
        has_session: false,
        ibm_prefix: None,
        has_status_check: false,
        default_status_check: false,
        required_keys: &[],
        recommended_keys: &["QRMI_AB_FELIS_API_KEY", "QRMI_AB_FELIS_BASE_ENDPOINT"],
        url_keys: &["QRMI_AB_FELIS_BASE_ENDPOINT"],
        job_only_url_keys: &["QRMI_AB_FELIS_BASE_ENDPOINT"],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::Oqtopus,
        name: "oqtopus",
        has_session: false,
        ibm_prefix: None,
        has_status_check: true,
        default_status_check: false,
        required_keys: &["QRMI_OQTOPUS_URL", "QRMI_OQTOPUS_API_TOKEN"],
        recommended_keys: &[],
        url_keys: &["QRMI_OQTOPUS_URL"],
        job_only_url_keys: &["QRMI_OQTOPUS_URL"],
        default_user_keys: &[],
    },
    TypeFacts {
        kind: ResourceType::Other,
        name: "(other)",
        has_session: false,
        ibm_prefix: None,
        has_status_check: false,
        default_status_check: false,
        required_keys: &[],
        recommended_keys: &[],
        url_keys: &[],
        job_only_url_keys: &[],
        default_user_keys: &[],
    },
];

const _: () = {
    let mut i = 0;
    while i < TYPE_FACTS.len() {
        assert!(
            TYPE_FACTS[i].kind as usize == i,
            "TYPE_FACTS rows must follow the order of ResourceType"
        );
        i += 1;
    }
};

impl ResourceType {
    /// The known types (not `Other`).
    pub const ALL: [ResourceType; 8] = [
        ResourceType::IbmQuantumSystem,
        ResourceType::IbmQuantumComputeService,
        ResourceType::QiskitRuntimeService,
        ResourceType::PasqalCloud,
        ResourceType::PasqalLocal,
        ResourceType::IqmServer,
        ResourceType::AliceBobFelis,
        ResourceType::Oqtopus,
    ];

    pub(super) fn facts(self) -> &'static TypeFacts {
        &TYPE_FACTS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    pub fn parse(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Types whose acquisition creates a session at the backend (released at job end).
    pub fn has_session(self) -> bool {
        self.facts().has_session
    }

    /// Whether acquiring or releasing a resource of this type (with its `status_check`) makes
    /// a network call: a session, or a status call (qrmi-backend's token_only makes one for
    /// these three types only). Otherwise the token is ours and no backend helper runs.
    pub fn calls_backend(self, status_check: bool) -> bool {
        self.has_session()
            || (status_check
                && matches!(
                    self,
                    ResourceType::IbmQuantumSystem
                        | ResourceType::PasqalCloud
                        | ResourceType::IqmServer
                ))
    }

    /// Key prefix of the IBM types (`QRMI_IBM_QCS_` / `QRMI_IBM_QRS_` / `QRMI_IBM_QS_`).
    pub fn ibm_prefix(self) -> Option<&'static str> {
        self.facts().ibm_prefix
    }

    /// URL keys the plugin itself calls (status check, session open and close), with the
    /// site's credential where the config holds one. The others are only the job's QRMI's.
    pub fn plugin_url_keys(self) -> Vec<&'static str> {
        let facts = self.facts();
        facts
            .url_keys
            .iter()
            .copied()
            .filter(|k| !facts.job_only_url_keys.contains(k))
            .collect()
    }

    /// Keys a job may set for itself even when the site's config sets them (by default; a
    /// resource's `user_keys` adds more).
    pub fn default_user_keys(self) -> Vec<String> {
        self.facts()
            .default_user_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
