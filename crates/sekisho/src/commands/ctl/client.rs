//! A small admin-API client that trusts only the relay's CA.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::Value;

use crate::cli::CtlArgs;
use crate::i18n::Lang;

pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
    lang: Lang,
}

impl ApiClient {
    pub(crate) fn from_args(args: &CtlArgs, lang: Lang) -> anyhow::Result<Self> {
        let key = args.api_key.clone().ok_or_else(|| {
            anyhow!(lang.pick(
                "no API key: pass --api-key or set SEKISHO_API_KEY",
                "API キーがありません: --api-key を指定するか SEKISHO_API_KEY を設定してください"
            ))
        })?;
        let ca = args.ca.as_deref().ok_or_else(|| {
            anyhow!(lang.pick(
                "no relay CA: pass --ca DATA_DIR/ca.pem or set SEKISHO_CA",
                "リレーの CA がありません: --ca DATA_DIR/ca.pem を指定するか SEKISHO_CA を設定してください"
            ))
        })?;
        Self::new(&args.url, &key, ca, lang)
    }

    pub(crate) fn new(url: &str, key: &str, ca: &Path, lang: Lang) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
        let der =
            sekisho_tunnel::tls::first_cert(&pem).ok_or_else(|| anyhow!("`{}` holds no certificate", ca.display()))?;
        let tls = sekisho_tunnel::tls::client_config(sekisho_tunnel::tls::Pin::Ca(der), vec![b"http/1.1".to_vec()])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(ApiClient { http, base: url.trim_end_matches('/').to_owned(), key: key.to_owned(), lang })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body)).await
    }

    /// GET returning the body as text (CSV and JSON-lines exports).
    pub(crate) async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.key).send().await?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("http_error");
        let message = body["error"]["message"].as_str().map_or_else(|| status.to_string(), str::to_owned);
        Err(anyhow!("{message} [{code}]"))
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.bearer_auth(&self.key).send().await.map_err(|e| {
            anyhow!("{} {}: {e}", self.lang.pick("cannot reach the relay at", "リレーに接続できません:"), self.base)
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("http_error");
        let message = body["error"]["message"].as_str().map_or_else(|| status.to_string(), str::to_owned);
        Err(anyhow!("{message} [{code}]"))
    }
}
