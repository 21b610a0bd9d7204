//! A small admin-API client that trusts only the relay's CA.

use std::fmt;
use std::path::Path;

use anyhow::anyhow;
use serde_json::Value;

use crate::cli::CtlArgs;
use crate::i18n::Lang;

pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// None only for the endpoints that need no key (`login`).
    key: Option<String>,
    lang: Lang,
    /// The CA file trusted, named when the relay's certificate does not match it.
    ca: std::path::PathBuf,
}

/// An error answer of the API. It displays as `message [code]`; callers that need more (policy
/// diagnostics) downcast the `anyhow::Error` to this and read [`ApiError::error`].
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: String,
    pub(crate) message: String,
    /// The whole `error` object of the answer (`Null` when the body was not our error shape).
    pub(crate) error: Value,
}

impl ApiError {
    /// The answer's message in `lang` (the relay sends both; an older one only English).
    fn from_response(status: reqwest::StatusCode, text: &str, lang: Lang) -> Self {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let error = body["error"].clone();
        let code = error["code"].as_str().unwrap_or("http_error").to_owned();
        let said = |field: &str| error[field].as_str().map(str::to_owned);
        let message = match lang {
            Lang::Ja => said("message_ja").or_else(|| said("message")),
            Lang::En => said("message"),
        }
        .unwrap_or_else(|| match lang {
            Lang::Ja => format!("HTTP {}", status.as_u16()),
            Lang::En => status.to_string(),
        });
        ApiError { code, message, error }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

/// Query parameters; `None` values are left out, the rest percent-encoded by reqwest.
pub(crate) type Query<'a> = [(&'a str, Option<String>)];

impl ApiClient {
    pub(crate) fn from_args(args: &CtlArgs, lang: Lang) -> anyhow::Result<Self> {
        let key = args.api_key.clone().ok_or_else(|| {
            anyhow!(lang.pick(
                "no API key: pass --api-key or set SEKISHO_API_KEY",
                "API キーがありません: --api-key を指定するか SEKISHO_API_KEY を設定してください"
            ))
        })?;
        Self::build(&args.url, Some(&key), ca_of(args, lang)?, lang)
    }

    /// A client that sends no API key, for `login`.
    pub(crate) fn anonymous(args: &CtlArgs, lang: Lang) -> anyhow::Result<Self> {
        Self::build(&args.url, None, ca_of(args, lang)?, lang)
    }

    pub(crate) fn new(url: &str, key: &str, ca: &Path, lang: Lang) -> anyhow::Result<Self> {
        Self::build(url, Some(key), ca, lang)
    }

    fn build(url: &str, key: Option<&str>, ca: &Path, lang: Lang) -> anyhow::Result<Self> {
        if let Some(rest) = url.strip_prefix("http://") {
            return Err(anyhow!(
                "{}",
                lang.pick(
                    &format!("`{url}`: the relay speaks HTTPS only; use https://{rest}"),
                    &format!("`{url}`: リレーは HTTPS のみです。https://{rest} を指定してください"),
                )
            ));
        }
        let pem = std::fs::read_to_string(ca).map_err(|e| lang.file_error(false, ca, &e))?;
        let der = sekisho_tunnel::tls::first_cert(&pem).ok_or_else(|| {
            anyhow!(lang.pick(
                format!("`{}` holds no certificate", ca.display()),
                format!("`{}` に証明書がありません", ca.display())
            ))
        })?;
        let tls = sekisho_tunnel::tls::client_config(sekisho_tunnel::tls::Pin::Ca(der), vec![b"http/1.1".to_vec()])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(ApiClient {
            http,
            base: url.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
            lang,
            ca: ca.to_path_buf(),
        })
    }

    /// Why the relay could not be reached, said as curl would: the certificate is not trusted by
    /// `--ca`, the other end does not speak TLS, nobody listens, or else the whole chain of causes.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        let lower = chain.to_ascii_lowercase();
        let (en, ja) = if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") {
            (
                format!(
                    "the relay's certificate is not signed by the CA in --ca `{}`; use that relay's ca.pem",
                    self.ca.display()
                ),
                format!(
                    "リレーの証明書は --ca `{}` の CA で署名されていません。そのリレーの ca.pem を指定してください",
                    self.ca.display()
                ),
            )
        } else if lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("wrong version number")
        {
            (
                "TLS expected, but the other end does not speak TLS (a plain HTTP port?)".to_owned(),
                "TLS を期待しましたが、相手は TLS を話しません (平文の HTTP ポートでは?)".to_owned(),
            )
        } else if lower.contains("connection refused") {
            (
                "connection refused: is the relay running and listening there?".to_owned(),
                "接続を拒否されました: リレーは起動してそのアドレスで待ち受けていますか?".to_owned(),
            )
        } else {
            (chain.clone(), chain.clone())
        };
        anyhow!(
            "{} {}: {}",
            self.lang.pick("cannot reach the relay at", "リレーに接続できません:"),
            self.base,
            self.lang.pick(&en, &ja)
        )
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    /// GET with query parameters.
    pub(crate) async fn get_query(&self, path: &str, query: &Query<'_>) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path)).query(&present(query))).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// GET with query parameters, returning the body as text (CSV and JSON-lines exports).
    pub(crate) async fn get_text(&self, path: &str, query: &Query<'_>) -> anyhow::Result<String> {
        self.fetch(self.http.get(self.url(path)).query(&present(query))).await
    }

    /// GET whose body is read as it arrives (live views).
    pub(crate) async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.stream_req(self.http.get(self.url(path))).await
    }

    /// GET with a query whose body is read as it arrives (exports to a file).
    pub(crate) async fn stream_query(&self, path: &str, query: &Query<'_>) -> anyhow::Result<reqwest::Response> {
        self.stream_req(self.http.get(self.url(path)).query(&present(query))).await
    }

    /// POSTs `body` and returns the response to read as it arrives.
    pub(crate) async fn stream_post(&self, path: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
        self.stream_req(self.http.post(self.url(path)).json(body)).await
    }

    async fn stream_req(&self, mut req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() {
            Ok(resp)
        } else {
            Err(ApiError::from_response(status, &resp.text().await.unwrap_or_default(), self.lang).into())
        }
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let text = self.fetch(req).await?;
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// Sends with the key; a non-2xx answer becomes an [`ApiError`].
    async fn fetch(&self, req: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let req = match &self.key {
            Some(key) => req.bearer_auth(key),
            None => req,
        };
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() { Ok(text) } else { Err(ApiError::from_response(status, &text, self.lang).into()) }
    }
}

fn ca_of(args: &CtlArgs, lang: Lang) -> anyhow::Result<&Path> {
    args.ca.as_deref().ok_or_else(|| {
        anyhow!(lang.pick(
            "no relay CA: pass --ca DATA_DIR/ca.pem or set SEKISHO_CA",
            "リレーの CA がありません: --ca DATA_DIR/ca.pem を指定するか SEKISHO_CA を設定してください"
        ))
    })
}

fn present<'a>(query: &'a Query<'a>) -> Vec<(&'a str, &'a str)> {
    query.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_keep_code_message_and_details() {
        let body = r#"{"error":{"code":"invalid_policy","message":"bad","diagnostics":[{"index":0}]}}"#;
        let e = ApiError::from_response(reqwest::StatusCode::BAD_REQUEST, body, Lang::En);
        assert_eq!(e.to_string(), "bad [invalid_policy]");
        assert_eq!(e.error["diagnostics"][0]["index"], 0);
        let e = ApiError::from_response(reqwest::StatusCode::BAD_GATEWAY, "<html>", Lang::En);
        assert_eq!(e.to_string(), "502 Bad Gateway [http_error]");
        assert!(e.error.is_null());
    }

    #[test]
    fn absent_query_values_are_left_out() {
        let q: &Query<'_> = &[("a", Some("x y".into())), ("b", None)];
        assert_eq!(present(q), vec![("a", "x y")]);
    }
}
