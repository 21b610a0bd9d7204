//! The typed audit event and its stored form.

use std::net::IpAddr;

use sekisho_store::AuditRecord;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A policy decision on a path (tunnel, browser, ssh, socks). An allowed stream has two:
    /// `opened` (committed before its first byte is forwarded) and `closed` (bytes, duration).
    Access,
    /// An agent enrolled with a token.
    AgentEnroll,
    /// An agent failed to authenticate.
    AgentAuth,
    /// A user login attempt on any surface.
    Login,
    /// An admin API request authenticated with an API key or session (or refused).
    Admin,
    /// The relay's own housekeeping (retention pruning).
    System,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Access => "access",
            EventKind::AgentEnroll => "agent_enroll",
            EventKind::AgentAuth => "agent_auth",
            EventKind::Login => "login",
            EventKind::Admin => "admin",
            EventKind::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectKind {
    User,
    Agent,
    ApiKey,
    #[default]
    Anonymous,
    System,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Agent => "agent",
            SubjectKind::ApiKey => "api_key",
            SubjectKind::Anonymous => "anonymous",
            SubjectKind::System => "system",
        }
    }
}

/// One audit event, as the relay builds it.
#[derive(Debug, Clone)]
pub struct Event {
    pub tenant: String,
    /// When it happened (ms since the epoch); 0 means "now", stamped by the writer.
    pub at: i64,
    pub kind: EventKind,
    pub subject_kind: SubjectKind,
    pub subject: String,
    /// `tunnel`, `browser`, `ssh`, `socks`, `api`, or empty.
    pub path: String,
    /// Service name, host:port or domain.
    pub target: String,
    pub decision: Decision,
    /// Why, for people: the condition that decided, or an error code and message.
    pub reason: String,
    /// The policy that decided (`wiki/deny/0`, `default-deny`), or empty.
    pub policy_id: String,
    pub auth_method: String,
    pub source_ip: Option<IpAddr>,
    pub country: String,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub duration_ms: Option<u64>,
    /// Free-form extra facts (e.g. the admin request line), JSON or text.
    pub detail: String,
    /// An access decision's whole input as JSON (set by the access gate only).
    pub input: String,
    /// The user the principal acted for, and the agent it came through (or that it is).
    pub principal_user: String,
    pub principal_agent: String,
    /// The stream this access event belongs to, and which of its events it is.
    pub stream_id: String,
    pub phase: Phase,
}

/// Which of a stream's events this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// An event that stands alone (a refusal, a login, a part of a bastion session).
    #[default]
    Single,
    /// The stream was allowed and is about to be forwarded: committed before its first byte.
    Opened,
    /// The stream ended: its bytes and duration.
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Single => "",
            Phase::Opened => sekisho_store::PHASE_OPENED,
            Phase::Closed => sekisho_store::PHASE_CLOSED,
        }
    }
}

impl Event {
    pub fn new(tenant: &str, kind: EventKind, decision: Decision) -> Self {
        Event {
            tenant: tenant.to_owned(),
            at: 0,
            kind,
            subject_kind: SubjectKind::Anonymous,
            subject: String::new(),
            path: String::new(),
            target: String::new(),
            decision,
            reason: String::new(),
            policy_id: String::new(),
            auth_method: String::new(),
            source_ip: None,
            country: String::new(),
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            detail: String::new(),
            input: String::new(),
            principal_user: String::new(),
            principal_agent: String::new(),
            stream_id: String::new(),
            phase: Phase::Single,
        }
    }

    /// An access event. Only the access gate (`sekisho-gate`) makes these: every path's decisions
    /// have one shape and keep their input (a lint refuses calls elsewhere).
    pub fn access(tenant: &str, decision: Decision) -> Self {
        Event::new(tenant, EventKind::Access, decision)
    }

    pub fn subject(mut self, kind: SubjectKind, name: impl Into<String>) -> Self {
        self.subject_kind = kind;
        self.subject = name.into();
        self
    }

    /// The principal in its own fields: the user acted for (if any) and the agent (device) it
    /// came through or that it is (if any), so search finds it under either name.
    pub fn principal(mut self, user: impl Into<String>, agent: impl Into<String>) -> Self {
        self.principal_user = user.into();
        self.principal_agent = agent.into();
        self
    }

    /// Marks the event as one of stream `id`'s.
    pub fn stream(mut self, id: impl Into<String>, phase: Phase) -> Self {
        self.stream_id = id.into();
        self.phase = phase;
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    pub fn policy(mut self, policy_id: impl Into<String>) -> Self {
        self.policy_id = policy_id.into();
        self
    }

    pub fn auth(mut self, method: &str) -> Self {
        self.auth_method = method.to_owned();
        self
    }

    pub fn source(mut self, ip: IpAddr, country: impl Into<String>) -> Self {
        self.source_ip = Some(ip);
        self.country = country.into();
        self
    }

    pub fn traffic(mut self, bytes_in: u64, bytes_out: u64, duration_ms: u64) -> Self {
        self.bytes_in = Some(bytes_in);
        self.bytes_out = Some(bytes_out);
        self.duration_ms = Some(duration_ms);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn at(mut self, at_ms: i64) -> Self {
        self.at = at_ms;
        self
    }

    /// The stored form.
    pub fn into_record(self, now_ms: i64) -> AuditRecord {
        let clamp = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        AuditRecord {
            tenant_id: self.tenant,
            at: if self.at == 0 { now_ms } else { self.at },
            kind: self.kind.as_str().to_owned(),
            subject_kind: self.subject_kind.as_str().to_owned(),
            subject: self.subject,
            path: self.path,
            target: self.target,
            decision: self.decision.as_str().to_owned(),
            reason: self.reason,
            policy_id: self.policy_id,
            auth_method: self.auth_method,
            source_ip: self.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            country: self.country,
            bytes_in: clamp(self.bytes_in),
            bytes_out: clamp(self.bytes_out),
            duration_ms: clamp(self.duration_ms),
            detail: self.detail,
            input: self.input,
            principal_user: self.principal_user,
            principal_agent: self.principal_agent,
            stream_id: self.stream_id,
            phase: self.phase.as_str().to_owned(),
        }
    }
}
