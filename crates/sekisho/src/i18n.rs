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
