//! The bastion's own login to a target: decided by policy, reached through the target's back
//! agent or straight from the relay, its host key pinned on first use, authenticated with the
//! target's sealed credential, or, where the operator chose it for the target, with the keys
//! of the user's own forwarded agent (`ssh -A`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::Channel;
use russh::client::{self, Msg as ClientMsg};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::server::Handle;
use sekisho_gate::{AccessPath, Attempt, Denial, Opened, Resource, Subject, Verdict};
use sekisho_store::{Protocol, Service, SshTarget};
use sekisho_tunnel::proto::{self, OpenService};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Bastion;
use super::auth::Authed;
use super::channel::Chan;
use sekisho_door::State;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most keys of a forwarded agent tried at a target (sshd allows six attempts by default).
const MAX_AGENT_KEYS: usize = 5;

/// A byte stream to the target.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A target the user may use, connected and logged in.
pub(super) struct Connected {
    pub(super) service: Service,
    pub(super) via: String,
    link: Link,
    /// The gate's permit for this target; each channel's end is reported through it.
    pub(super) permit: Option<Opened>,
}

enum Link {
    Ssh(client::Handle<Pin>),
    Telnet(tokio::sync::Mutex<Option<Box<dyn Io>>>, SshTarget),
}

impl Connected {
    /// A new session channel on the target (SSH targets only).
    pub(super) async fn open_channel(&self) -> Result<Channel<ClientMsg>, String> {
        match &self.link {
            Link::Ssh(h) => h.channel_open_session().await.map_err(|e| e.to_string()),
            Link::Telnet(..) => Err("a Telnet target carries one terminal session".into()),
        }
    }

    /// Whether `path` is a directory on an SSH target: `test -d` through the login's shell there
    /// (the shell that runs `scp -t`, so `~` and relative paths mean the same). `None` when it
    /// cannot be asked (a Telnet target, a refused channel, no answer within 5 s).
    pub(super) async fn is_dir(&self, path: &str) -> Option<bool> {
        let ask = async {
            let mut channel = self.open_channel().await.ok()?;
            channel.exec(true, format!("test -d {}", shell_word(path))).await.ok()?;
            while let Some(msg) = channel.wait().await {
                if let russh::ChannelMsg::ExitStatus { exit_status } = msg {
                    return Some(exit_status == 0);
                }
            }
            None
        };
        tokio::time::timeout(Duration::from_secs(5), ask).await.ok().flatten()
    }

    /// The Telnet byte stream and login, taken once.
    pub(super) async fn take_telnet(&self) -> Option<(Box<dyn Io>, SshTarget)> {
        match &self.link {
            Link::Telnet(io, cred) => io.lock().await.take().map(|io| (io, cred.clone())),
            Link::Ssh(_) => None,
        }
    }

    pub(super) fn is_telnet(&self) -> bool {
        matches!(self.link, Link::Telnet(..))
    }
}

/// `path` as one `sh` word: single-quoted, with a leading `~/` left for the shell to expand.
fn shell_word(path: &str) -> String {
    let quote = |p: &str| format!("'{}'", p.replace('\'', r"'\''"));
    match path.strip_prefix("~/") {
        Some(rest) => format!("~/{}", quote(rest)),
        None if path == "~" => "~".to_owned(),
        None => quote(path),
    }
}

/// Checks the target's host key against the pinned one; remembers what it saw.
struct Pin {
    expected: String,
    seen: Arc<parking_lot::Mutex<Option<String>>>,
}

impl client::Handler for Pin {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let mut key = key.clone();
        key.set_comment("");
        let text = key.to_openssh().unwrap_or_default();
        let ok = self.expected.is_empty() || self.expected == text;
        *self.seen.lock() = Some(text);
        Ok(ok)
    }
}

/// Decides whether the user may use `svc` now, as the target's Cedar policy says.
/// What the gate is told about `authed` using the bastion now.
fn attempt(state: &State, authed: &Authed) -> Attempt {
    let topo = state.topology();
    let subject = Subject::User { name: authed.user.clone(), groups: authed.groups.clone(), via_agent: None };
    Attempt {
        tenant: authed.tenant.clone().into(),
        path: AccessPath::Ssh,
        auth: authed.method,
        subject,
        source_ip: authed.ip,
        country: authed.country.clone(),
        at: sekisho_door::decide::tenant_now(&topo, &authed.tenant),
        credential: None,
    }
}

fn resource(svc: &Service) -> Resource {
    Resource::service(svc.name.clone(), svc.protocol)
}

/// The tenant's bastion targets the user may use now, by name (a dry run at the gate: the menu
/// shows them; opening one is decided, with evidence, by [`open`]).
pub(super) fn allowed_targets(state: &State, authed: &Authed) -> Vec<Service> {
    let topo = state.topology();
    let attempt = attempt(state, authed);
    let mut out: Vec<Service> = topo
        .services
        .values()
        .filter(|s| s.tenant_id == authed.tenant && s.protocol.is_bastion())
        .filter(|s| state.gate.dry_run(&attempt, &resource(s)).allowed)
        .cloned()
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Where the user's forwarded agent can be reached: her connection, and the channel whose
/// requests tell whether she asked for forwarding.
pub(super) struct UserAgent<'a> {
    pub(super) handle: &'a Handle,
    pub(super) chan: &'a Chan,
}

/// Decides, connects and logs in to the target `name`; Err is the refusal shown to the user
/// (already in the audit log).
pub(super) async fn open(b: &Bastion, agent: UserAgent<'_>, name: &str) -> Result<Connected, String> {
    let state = &b.state;
    let authed = &*agent.chan.authed;
    let attempt = attempt(state, authed);
    let svc = state.topology().find_service(&authed.tenant, name).filter(|s| s.protocol.is_bastion()).cloned();
    let Some(svc) = svc else {
        let why = format!("unknown_target: there is no SSH or Telnet target `{name}`");
        record_refusal(state.gate.refuse(&attempt, name, "unknown_target", why.clone())).await;
        return Err(why);
    };
    let permit = match state.gate.decide(&attempt, &resource(&svc)) {
        Verdict::Permit(p) => p,
        Verdict::Deny(denial) => {
            let why = denial.message();
            record_refusal(denial).await;
            return Err(why);
        }
    };
    match connect(state, &svc, agent).await {
        // Logged in to the target with the relay's credential; on record as opened before a
        // byte of the user's is forwarded.
        Ok(mut c) => match permit.open().await {
            Ok(opened) => {
                c.permit = Some(opened);
                Ok(c)
            }
            Err(denial) => {
                let why = denial.message();
                record_refusal(denial).await;
                Err(why)
            }
        },
        Err(why) => {
            permit.withdraw();
            let code = why.split(':').next().unwrap_or_default().to_owned();
            record_refusal(state.gate.refuse(&attempt, &svc.name, &code, why.clone())).await;
            Err(why)
        }
    }
}

async fn record_refusal(denial: Denial) {
    if let Err(e) = denial.record().await {
        tracing::error!(error = %e, "cannot record a bastion refusal");
    }
}

/// A byte stream to the service's target: a tunnel stream to its back agent, or TCP from here.
async fn dial(state: &State, svc: &Service) -> Result<(Box<dyn Io>, String), String> {
    match &svc.agent_id {
        Some(agent_id) => {
            let agent = state.topology().agents.get(agent_id).map_or_else(|| agent_id.to_string(), |a| a.name.clone());
            let conn = state
                .hub
                .conn(agent_id)
                .ok_or_else(|| format!("agent_offline: the agent `{agent}` of `{}` is offline", svc.name))?;
            let open =
                OpenService { service: svc.id.to_string(), from_agent: None, from_key: None, e2e: None, dest: None };
            let stream = conn.open(proto::encode(&open)).map_err(|e| format!("agent_offline: {e}"))?;
            Ok((Box::new(stream), format!("agent {agent}")))
        }
        None => {
            let addr = svc.target.split_once("://").map_or(svc.target.as_str(), |(_, r)| r).trim_end_matches('/');
            let (host, port) =
                split_host_port(addr).ok_or_else(|| format!("target_unreachable: `{addr}` is not host:port"))?;
            // The relay's own networks only where the operator allowed them (sekisho_door::egress).
            let tcp = state
                .egress
                .connect(host, port, CONNECT_TIMEOUT)
                .await
                .map_err(|e| format!("{}: target `{}`: {e}", e.code(), svc.name))?;
            let _ = tcp.set_nodelay(true);
            Ok((Box::new(tcp), "relay".into()))
        }
    }
}

async fn connect(state: &State, svc: &Service, agent: UserAgent<'_>) -> Result<Connected, String> {
    let cred =
        state.store.get_ssh_target(&svc.id).await.map_err(|e| format!("store_unavailable: {e}"))?.ok_or_else(|| {
            format!("no_credential: target `{}` has no login yet; an admin sets it with `ctl service login`", svc.name)
        })?;
    if cred.secret_kind == "agent" && !agent_forwarded(agent.chan).await {
        return Err(format!(
            "agent_required: `{}` logs in with your own key through agent forwarding; connect with `ssh -A`",
            svc.name
        ));
    }
    let (io, via) = dial(state, svc).await?;
    if svc.protocol == Protocol::Telnet {
        return Ok(Connected {
            service: svc.clone(),
            via,
            link: Link::Telnet(tokio::sync::Mutex::new(Some(io)), cred),
            permit: None,
        });
    }
    let started = Instant::now();
    let config = client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 8 << 20,
        maximum_packet_size: 65535,
        nodelay: true,
        preferred: russh::Preferred { cipher: std::borrow::Cow::Borrowed(super::TARGET_CIPHERS), ..Default::default() },
        ..Default::default()
    };
    let seen = Arc::new(parking_lot::Mutex::new(None));
    let pin = Pin { expected: cred.host_key.clone(), seen: seen.clone() };
    let handle = match tokio::time::timeout(CONNECT_TIMEOUT, client::connect_stream(Arc::new(config), io, pin)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let seen = seen.lock().clone();
            return Err(match seen {
                Some(k) if !cred.host_key.is_empty() && k != cred.host_key => format!(
                    "host_key_mismatch: target `{}` presented {k}, not its pinned key; an admin must check the \
                     target and pin the new key",
                    svc.name
                ),
                _ => format!("target_unreachable: ssh to `{}` failed: {e}", svc.name),
            });
        }
        Err(_) => return Err(format!("target_unreachable: `{}` did not complete the SSH handshake", svc.name)),
    };
    let seen_key = seen.lock().clone();
    if cred.host_key.is_empty()
        && let Some(k) = seen_key
    {
        // Trust on first use holds only if the key is kept: one that cannot be stored ends the
        // session, or the next connection would trust whatever key it is shown.
        state
            .store
            .pin_host_key(&svc.id, &k)
            .await
            .map_err(|e| format!("store_unavailable: cannot pin the host key of `{}` on first use: {e}", svc.name))?;
        tracing::info!(target = %svc.name, key = %k, "pinned the target's host key on first use");
    }
    let mut handle = handle;
    // A stored password or key is unsealed or refused by name, never tried as empty; a login by
    // the user's forwarded agent (or none) has no stored secret.
    let secret = match cred.secret_kind.as_str() {
        "password" | "key" => state.master.open(&cred.secret).ok_or_else(|| {
            format!(
                "bad_credential: the stored login of `{}` cannot be unsealed with this relay's master key",
                svc.name
            )
        })?,
        _ => Vec::new(),
    };
    let result = match cred.secret_kind.as_str() {
        "password" => handle.authenticate_password(&cred.login, String::from_utf8_lossy(&secret)).await,
        "key" => {
            let key = PrivateKey::from_openssh(&secret)
                .map_err(|e| format!("bad_credential: the stored key of `{}` is unreadable: {e}", svc.name))?;
            let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
            handle.authenticate_publickey(&cred.login, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await
        }
        "agent" => {
            let login = if cred.login.is_empty() { agent.chan.authed.user.clone() } else { cred.login.clone() };
            return match login_with_agent(&mut handle, &login, agent.handle).await {
                Ok(true) => {
                    tracing::debug!(target = %svc.name, login = %login, "target logged in with the user's agent");
                    Ok(Connected { service: svc.clone(), via, link: Link::Ssh(handle), permit: None })
                }
                Ok(false) => Err(format!(
                    "target_login_failed: `{}` accepted none of the keys in your forwarded agent for `{login}`",
                    svc.name
                )),
                Err(e) => Err(format!("agent_failed: your forwarded agent could not sign for `{}`: {e}", svc.name)),
            };
        }
        _ => handle.authenticate_none(&cred.login).await,
    };
    match result {
        Ok(r) if r.success() => {}
        Ok(_) => {
            return Err(format!(
                "target_login_failed: `{}` refused the bastion's login `{}`; an admin must check the credential",
                svc.name, cred.login
            ));
        }
        Err(e) => return Err(format!("target_unreachable: `{}`: {e}", svc.name)),
    }
    tracing::debug!(target = %svc.name, ms = started.elapsed().as_millis() as u64, "target logged in");
    Ok(Connected { service: svc.clone(), via, link: Link::Ssh(handle), permit: None })
}

/// Whether the user forwarded her agent on this connection. OpenSSH asks for forwarding before
/// it starts the shell or command, so once the channel started without it, none is coming.
async fn agent_forwarded(chan: &Chan) -> bool {
    let (mut forwarded, mut started) = (chan.agent_forwarded.clone(), chan.started.subscribe());
    let wait = async {
        tokio::select! {
            r = forwarded.wait_for(|f| *f) => r.is_ok(),
            _ = started.wait_for(Option::is_some) => *chan.agent_forwarded.borrow(),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, wait).await.unwrap_or(false)
}

/// Logs in with the keys of the user's forwarded agent, each signature made by her agent (the
/// bastion never holds her key). Ok(false): the target took none of them.
async fn login_with_agent(handle: &mut client::Handle<Pin>, login: &str, user: &Handle) -> Result<bool, String> {
    let channel = user.channel_open_agent().await.map_err(|e| format!("cannot open the agent channel: {e}"))?;
    let mut agent = AgentClient::connect(channel.into_stream());
    let ids = tokio::time::timeout(CONNECT_TIMEOUT, agent.request_identities())
        .await
        .map_err(|_| "the agent did not answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
    for id in ids.into_iter().take(MAX_AGENT_KEYS) {
        let AgentIdentity::PublicKey { key, .. } = id else { continue };
        let r = tokio::time::timeout(CONNECT_TIMEOUT, handle.authenticate_publickey_with(login, key, hash, &mut agent))
            .await
            .map_err(|_| "the agent did not sign in time".to_owned())?
            .map_err(|e| e.to_string())?;
        if r.success() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `host:port` or `[v6]:port` as its parts.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{shell_word, split_host_port};

    #[test]
    fn paths_become_one_shell_word() {
        assert_eq!(shell_word("/srv/a b"), "'/srv/a b'");
        assert_eq!(shell_word("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(shell_word("~/up $(x)"), "~/'up $(x)'");
        assert_eq!(shell_word("~"), "~");
        assert_eq!(shell_word("~alice/x"), "'~alice/x'");
    }

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(split_host_port("10.0.0.5:22"), Some(("10.0.0.5", 22)));
        assert_eq!(split_host_port("[::1]:2323"), Some(("::1", 2323)));
        assert_eq!(split_host_port("web01.internal:22"), Some(("web01.internal", 22)));
        assert_eq!(split_host_port("web01"), None);
        assert_eq!(split_host_port(":22"), None);
        assert_eq!(split_host_port("host:99999"), None);
    }
}
