//! `filter.language`: the share of letters written in the expected script(s), and the longest
//! run of letters from other scripts. Long-CoT traces drift into another language (a stretch
//! of Chinese inside an English trace is the common case with Qwen-family teachers); a low
//! share catches traces mostly in the wrong language, the run bound catches a drift of a few
//! sentences that barely moves the share.
//!
//! Letters are classified by Unicode block; digits, punctuation, symbols, mathematical
//! alphanumerics and whitespace belong to no script and neither count nor break a run. So do
//! markup and notation: LaTeX command names (`\frac`), tags (`<think>`) and lone ASCII letters
//! (variables such as `x`), which appear in traces of every language.

use schemars::JsonSchema;
use serde::Deserialize;

use super::length::TextField;
use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};

/// Writing systems told apart by [`script_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
pub enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    Devanagari,
    Bengali,
    Tamil,
    Thai,
    Georgian,
    Hangul,
    Hiragana,
    Katakana,
    Han,
    /// Letters of any other script.
    Other,
}

const N_SCRIPTS: usize = 16;

impl Script {
    fn index(self) -> usize {
        self as usize
    }
    const ALL: [Script; N_SCRIPTS] = [
        Script::Latin,
        Script::Greek,
        Script::Cyrillic,
        Script::Armenian,
        Script::Hebrew,
        Script::Arabic,
        Script::Devanagari,
        Script::Bengali,
        Script::Tamil,
        Script::Thai,
        Script::Georgian,
        Script::Hangul,
        Script::Hiragana,
        Script::Katakana,
        Script::Han,
        Script::Other,
    ];
}

/// The script of a letter, or `None` for characters of no script (digits, punctuation,
/// symbols, whitespace, mathematical alphanumerics, letterlike symbols such as ℝ).
pub fn script_of(c: char) -> Option<Script> {
    if c.is_ascii() {
        return c.is_ascii_alphabetic().then_some(Script::Latin);
    }
    let u = c as u32;
    let s = match u {
        0x00C0..=0x024F
        | 0x1E00..=0x1EFF
        | 0x2C60..=0x2C7F
        | 0xA720..=0xA7FF
        | 0xFF21..=0xFF3A
        | 0xFF41..=0xFF5A
        | 0xAA
        | 0xBA => Script::Latin,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x0530..=0x058F => Script::Armenian,
        0x0590..=0x05FF | 0xFB1D..=0xFB4F => Script::Hebrew,
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => Script::Arabic,
        0x0900..=0x097F => Script::Devanagari,
        0x0980..=0x09FF => Script::Bengali,
        0x0B80..=0x0BFF => Script::Tamil,
        0x0E00..=0x0E7F => Script::Thai,
        0x10A0..=0x10FF => Script::Georgian,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => Script::Hangul,
        0x3040..=0x309F => Script::Hiragana,
        0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Katakana,
        0x2E80..=0x2FDF
        | 0x3005
        | 0x3007
        | 0x3021..=0x3029
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F => Script::Han,
        // letterlike symbols and mathematical alphanumerics are notation, not language
        0x2100..=0x214F | 0x1D400..=0x1D7FF => return None,
        _ => Script::Other,
    };
    // marks and other non-letters inside script blocks (×, ÷, Arabic punctuation) count as none
    c.is_alphabetic().then_some(s)
}

/// The scripts a language is written in (ISO 639-1 code).
pub fn scripts_of_language(code: &str) -> Option<&'static [Script]> {
    use Script::*;
    Some(match code {
        "en" | "fr" | "de" | "es" | "it" | "pt" | "nl" | "sv" | "da" | "no" | "fi" | "pl" | "cs" | "sk" | "ro"
        | "hu" | "tr" | "vi" | "id" | "ms" | "tl" | "sw" | "ca" | "hr" | "sl" | "et" | "lv" | "lt" => &[Latin],
        "ru" | "uk" | "be" | "bg" | "sr" | "mk" | "kk" => &[Cyrillic],
        "el" => &[Greek],
        "zh" => &[Han],
        "ja" => &[Han, Hiragana, Katakana],
        "ko" => &[Hangul, Han],
        "ar" | "fa" | "ur" => &[Arabic],
        "he" => &[Hebrew],
        "hi" | "mr" | "ne" => &[Devanagari],
        "bn" => &[Bengali],
        "ta" => &[Tamil],
        "th" => &[Thai],
        "ka" => &[Georgian],
        "hy" => &[Armenian],
        _ => return None,
    })
}

/// Language codes [`scripts_of_language`] knows, for error messages.
pub const KNOWN_LANGUAGES: &str = "en fr de es it pt nl sv da no fi pl cs sk ro hu tr vi id ms tl sw ca hr sl et lv lt ru uk be bg sr mk kk el zh ja ko ar fa ur he hi mr ne bn ta th ka hy";

fn default_fields() -> Vec<TextField> {
    vec![TextField::Response]
}
fn default_neutral() -> Vec<Script> {
    vec![Script::Greek]
}
fn default_min_share() -> f64 {
    0.9
}
fn default_max_run() -> usize {
    16
}
fn default_min_letters() -> usize {
    20
}

/// Parameters of `filter.language`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    /// Expected language as an ISO 639-1 code (`en`, `zh`, `ja`, ...): its scripts are expected.
    /// Default `en` unless `scripts` is given.
    pub language: Option<String>,
    /// Expected scripts, instead of `language`, e.g. `[Latin, Han]` for a bilingual set.
    pub scripts: Option<Vec<Script>>,
    /// Fields to check, together. Default `[response]`.
    #[serde(default = "default_fields")]
    pub fields: Vec<TextField>,
    /// Scripts that count as neither expected nor foreign. Default `[Greek]` (math letters).
    #[serde(default = "default_neutral")]
    pub neutral: Vec<Script>,
    /// Least share of letters in the expected scripts. Default 0.9.
    #[serde(default = "default_min_share")]
    pub min_share: f64,
    /// Longest allowed run of foreign-script letters (no-script characters such as spaces
    /// and punctuation neither count nor break it). Default 16.
    #[serde(default = "default_max_run")]
    pub max_foreign_run: usize,
    /// Rows with fewer letters than this are kept unjudged. Default 20.
    #[serde(default = "default_min_letters")]
    pub min_letters: usize,
}

impl LanguageConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.language.is_some() && self.scripts.is_some() {
            return Err("give `language` or `scripts`, not both".into());
        }
        if let Some(l) = &self.language {
            if scripts_of_language(l).is_none() {
                return Err(format!("unknown language `{l}`; known: {KNOWN_LANGUAGES}"));
            }
        }
        if self.scripts.as_ref().is_some_and(|s| s.is_empty()) {
            return Err("`scripts` is empty".into());
        }
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(format!("min_share must be in [0, 1], got {}", self.min_share));
        }
        if self.fields.is_empty() {
            return Err("`fields` is empty".into());
        }
        Ok(())
    }
}

/// Role of each script under a config.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Expected,
    Neutral,
    Foreign,
}

/// Letter counts of a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptCounts {
    pub letters: [u64; N_SCRIPTS],
}

impl ScriptCounts {
    pub fn get(&self, s: Script) -> u64 {
        self.letters[s.index()]
    }
}

pub struct Language {
    cfg: LanguageConfig,
    roles: [Role; N_SCRIPTS],
}

impl Language {
    pub fn new(cfg: LanguageConfig) -> Self {
        let expected: Vec<Script> = match (&cfg.scripts, &cfg.language) {
            (Some(s), _) => s.clone(),
            (None, l) => scripts_of_language(l.as_deref().unwrap_or("en")).unwrap_or(&[Script::Latin]).to_vec(),
        };
        let mut roles = [Role::Foreign; N_SCRIPTS];
        for s in &cfg.neutral {
            roles[s.index()] = Role::Neutral;
        }
        for s in &expected {
            roles[s.index()] = Role::Expected;
        }
        Self { cfg, roles }
    }
}

/// What one pass over the text found.
struct Scan {
    counts: ScriptCounts,
    longest_run: usize,
    /// Byte offset (in the field it was found) and field index of the longest run.
    run_at: (usize, usize),
}

impl Language {
    fn scan(&self, texts: &[&str]) -> Scan {
        let mut counts = ScriptCounts::default();
        let (mut run, mut run_start) = (0usize, (0usize, 0usize));
        let (mut longest, mut longest_at) = (0usize, (0usize, 0usize));
        for (f, text) in texts.iter().enumerate() {
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let c = b[i];
                let (script, n, at) = if c.is_ascii_alphabetic() {
                    // a whole ASCII word at once; a lone letter is a variable such as `x`,
                    // notation in any language
                    let start = i;
                    while i < b.len() && b[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    if i - start == 1 {
                        continue;
                    }
                    (Script::Latin, i - start, start)
                } else if c < 0x80 {
                    i += 1;
                    // LaTeX command names and <tags> are markup, ASCII only
                    i += match c {
                        b'\\' => b[i..].iter().take_while(|x| x.is_ascii_alphabetic()).count(),
                        b'<' => tag_len(&text[i..]),
                        _ => 0,
                    };
                    continue;
                } else {
                    let ch = text[i..].chars().next().unwrap_or(' ');
                    let at = i;
                    i += ch.len_utf8();
                    match script_of(ch) {
                        Some(s) => (s, 1, at),
                        None => continue,
                    }
                };
                counts.letters[script.index()] += n as u64;
                match self.roles[script.index()] {
                    Role::Expected => run = 0,
                    Role::Neutral => {}
                    Role::Foreign => {
                        if run == 0 {
                            run_start = (f, at);
                        }
                        run += n;
                        if run > longest {
                            longest = run;
                            longest_at = run_start;
                        }
                    }
                }
            }
        }
        Scan { counts, longest_run: longest, run_at: (longest_at.1, longest_at.0) }
    }
}

/// Length after `<` of a tag such as `think>` or `/answer>`, or 0 when `<` opens none.
fn tag_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let slash = usize::from(b.first() == Some(&b'/'));
    let name = b[slash..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    if name > 0 && b.get(slash + name) == Some(&b'>') { slash + name + 1 } else { 0 }
}

impl Stage for Language {
    fn name(&self) -> &'static str {
        "filter.language"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let texts: Vec<&str> = self.cfg.fields.iter().map(|f| f.get(t)).collect();
        let scan = self.scan(&texts);
        let (mut expected, mut foreign) = (0u64, 0u64);
        for s in Script::ALL {
            match self.roles[s.index()] {
                Role::Expected => expected += scan.counts.get(s),
                Role::Foreign => foreign += scan.counts.get(s),
                Role::Neutral => {}
            }
        }
        let judged = expected + foreign;
        let share = if judged == 0 { 1.0 } else { expected as f64 / judged as f64 };
        let values = vec![("script_share", share), ("foreign_run", scan.longest_run as f64)];
        let verdict = if (judged as usize) < self.cfg.min_letters {
            Verdict::Keep
        } else if share < self.cfg.min_share {
            let top = Script::ALL
                .into_iter()
                .filter(|s| self.roles[s.index()] == Role::Foreign)
                .max_by_key(|s| scan.counts.get(*s))
                .unwrap_or(Script::Other);
            Verdict::drop(
                "wrong_script",
                format!(
                    "{share:.3} of {judged} letters in the expected scripts < min_share {} ({:?}: {})",
                    self.cfg.min_share,
                    top,
                    scan.counts.get(top)
                ),
            )
        } else if scan.longest_run > self.cfg.max_foreign_run {
            let (at, f) = scan.run_at;
            let snippet: String = texts[f][at..].chars().take(24).collect();
            Verdict::drop(
                "mixed_script",
                format!(
                    "{} foreign letters in a row in {} (max_foreign_run {}): `{snippet}`",
                    scan.longest_run,
                    self.cfg.fields[f].name(),
                    self.cfg.max_foreign_run
                ),
            )
        } else {
            Verdict::Keep
        };
        Ok(Measured { verdict, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_of_letters() {
        assert_eq!(script_of('a'), Some(Script::Latin));
        assert_eq!(script_of('é'), Some(Script::Latin));
        assert_eq!(script_of('π'), Some(Script::Greek));
        assert_eq!(script_of('д'), Some(Script::Cyrillic));
        assert_eq!(script_of('因'), Some(Script::Han));
        assert_eq!(script_of('か'), Some(Script::Hiragana));
        assert_eq!(script_of('カ'), Some(Script::Katakana));
        assert_eq!(script_of('한'), Some(Script::Hangul));
        assert_eq!(script_of('ب'), Some(Script::Arabic));
        assert_eq!(script_of('।'), None); // Devanagari danda is punctuation
        for c in ['1', ' ', '.', '，', '。', '×', 'ℝ', '𝑥', '∑', '\n'] {
            assert_eq!(script_of(c), None, "{c:?}");
        }
    }
}
