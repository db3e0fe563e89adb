//! Prompt files: TOML with one entry per situation id, each a list of
//! prompts (paraphrases). Two spellings are accepted:
//!
//! ```toml
//! dog_barking = ["a dog barking", "a barking dog"]
//!
//! [rain]
//! prompts = ["rain falling", "a rainy day"]
//! ```
//!
//! Training captions (`[data] captions` of a plan) and evaluation prompts
//! (`edgebind-train eval --prompts`) use the same format; keep the two sets
//! disjoint so that evaluation measures generalisation to unseen wording.

use std::collections::BTreeMap;
use std::path::Path;

/// Situation id -> its prompts, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompts {
    /// Per situation, at least one prompt each.
    pub by_situation: BTreeMap<String, Vec<String>>,
}

impl Prompts {
    /// Reads a prompt file; errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Prompts> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("prompts {}: {e}", path.display()))?;
        Prompts::parse(&text).map_err(|e| anyhow::anyhow!("prompts {}: {e}", path.display()))
    }

    /// Parses prompt TOML.
    pub fn parse(text: &str) -> anyhow::Result<Prompts> {
        let table: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut by_situation = BTreeMap::new();
        for (key, value) in table {
            let list = match &value {
                toml::Value::Array(a) => a.clone(),
                toml::Value::Table(t) => match t.get("prompts") {
                    Some(toml::Value::Array(a)) if t.len() == 1 => a.clone(),
                    _ => anyhow::bail!("[{key}] must hold exactly one key, `prompts = [...]`"),
                },
                _ => anyhow::bail!("`{key}` must be a list of prompts or a table with `prompts`"),
            };
            let mut prompts = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                match v.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() => prompts.push(s.to_string()),
                    _ => anyhow::bail!("`{key}` prompt {} is not a non-empty string", i + 1),
                }
            }
            if prompts.is_empty() {
                anyhow::bail!("`{key}` has no prompts");
            }
            by_situation.insert(key, prompts);
        }
        if by_situation.is_empty() {
            anyhow::bail!("no situations");
        }
        Ok(Prompts { by_situation })
    }

    /// Situation ids, sorted.
    pub fn situations(&self) -> Vec<String> {
        self.by_situation.keys().cloned().collect()
    }

    /// Every caption of a set of co-occurring situations: one prompt of each,
    /// joined with " and " (all combinations, in the set's order). `None` if
    /// a situation has no prompts.
    pub fn captions(&self, set: &[String]) -> Option<Vec<String>> {
        let mut out = vec![String::new()];
        for s in set {
            let ps = self.by_situation.get(s)?;
            out = out
                .iter()
                .flat_map(|prefix| {
                    ps.iter().map(move |p| {
                        if prefix.is_empty() {
                            p.clone()
                        } else {
                            format!("{prefix} and {p}")
                        }
                    })
                })
                .collect();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_and_captions_of_pairs() {
        let p = Prompts::parse(
            "dog = [\"a dog\", \"a puppy\"]\n[rain]\nprompts = [\"rain\", \"a shower\", \"drizzle\"]\n",
        )
        .unwrap();
        assert_eq!(p.situations(), vec!["dog", "rain"]);
        let c = p.captions(&["dog".into(), "rain".into()]).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], "a dog and rain");
        assert_eq!(c[5], "a puppy and drizzle");
        assert_eq!(
            p.captions(&["dog".into()]).unwrap(),
            vec!["a dog", "a puppy"]
        );
        assert!(p.captions(&["cat".into()]).is_none());
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, want) in [
            ("dog = 3", "`dog` must be a list"),
            ("dog = []", "`dog` has no prompts"),
            ("dog = [\"x\", \"\"]", "`dog` prompt 2"),
            ("[dog]\nwords = [\"x\"]", "[dog] must hold exactly one key"),
            ("", "no situations"),
            ("dog = [", ""),
        ] {
            let e = Prompts::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
