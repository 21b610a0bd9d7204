//! Japanese and English for everything the CLI says to people. The language comes from `--lang`,
//! else `LC_ALL`/`LC_MESSAGES`/`LANG` (`ja…` → Japanese), else English.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    pub(crate) fn detect(flag: Option<&str>) -> Lang {
        let from_env =
            || ["LC_ALL", "LC_MESSAGES", "LANG"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let tag = flag.map(str::to_owned).or_else(from_env).unwrap_or_default();
        if tag.to_ascii_lowercase().starts_with("ja") { Lang::Ja } else { Lang::En }
    }

    /// The language before the arguments are parsed (for their help and errors): `--lang X` or
    /// `--lang=X` anywhere on the command line, else `SEKISHO_LANG`, else the locale.
    pub(crate) fn from_args() -> Lang {
        let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
        let flag = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--lang") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        });
        Lang::detect(flag.or_else(|| std::env::var("SEKISHO_LANG").ok()).as_deref())
    }

    /// `cannot read `path`: why` (or write), with the system's reason in this language.
    pub(crate) fn file_error(self, write: bool, path: &std::path::Path, e: &std::io::Error) -> anyhow::Error {
        let path = path.display();
        match self {
            Lang::En => anyhow::anyhow!("cannot {} `{path}`: {e}", if write { "write" } else { "read" }),
            Lang::Ja => {
                use std::io::ErrorKind as K;
                let why = match e.kind() {
                    K::NotFound => "ファイルがありません".to_owned(),
                    K::PermissionDenied => "アクセスが許可されていません".to_owned(),
                    K::IsADirectory => "ディレクトリです".to_owned(),
                    K::AlreadyExists => "すでにあります".to_owned(),
                    K::InvalidData => "UTF-8 のテキストではありません".to_owned(),
                    K::StorageFull => "ディスクに空きがありません".to_owned(),
                    _ => format!("入出力エラー (OS のエラー番号 {})", e.raw_os_error().unwrap_or(0)),
                };
                anyhow::anyhow!("`{path}` を{}: {why}", if write { "書き込めません" } else { "読めません" })
            }
        }
    }

    /// Chooses between the English and Japanese text.
    pub(crate) fn pick<T>(self, en: T, ja: T) -> T {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_environment() {
        assert_eq!(Lang::detect(Some("ja")), Lang::Ja);
        assert_eq!(Lang::detect(Some("ja_JP.UTF-8")), Lang::Ja);
        assert_eq!(Lang::detect(Some("en")), Lang::En);
        assert_eq!(Lang::En.pick("a", "b"), "a");
        assert_eq!(Lang::Ja.pick("a", "b"), "b");
    }
}
