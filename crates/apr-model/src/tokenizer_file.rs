//! The vocabulary of a Hugging Face `tokenizer.json`, compared with the
//! tokenizer a model is meant to run with ([`crate::checkpoint::load_checked`]).

/// The vocabulary of a Hugging Face `tokenizer.json`: `(id, token)` pairs
/// of `model.vocab` and of `added_tokens`, each sorted.
#[derive(Debug, PartialEq)]
pub(crate) struct TokenizerVocab {
    vocab: Vec<(u64, String)>,
    added: Vec<(u64, String)>,
}

impl TokenizerVocab {
    pub(crate) fn from_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let map = v
            .get("model")
            .and_then(|m| m.get("vocab"))
            .and_then(serde_json::Value::as_object)
            .ok_or("no model.vocab map (token to id)")?;
        let mut vocab = Vec::with_capacity(map.len());
        for (tok, id) in map {
            let id = id
                .as_u64()
                .ok_or_else(|| format!("model.vocab: token {tok:?} has id {id}, not an id"))?;
            vocab.push((id, tok.clone()));
        }
        vocab.sort();
        let mut added = Vec::new();
        match v.get("added_tokens") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(list)) => {
                for (i, a) in list.iter().enumerate() {
                    let id = a.get("id").and_then(serde_json::Value::as_u64);
                    let content = a.get("content").and_then(serde_json::Value::as_str);
                    let (Some(id), Some(content)) = (id, content) else {
                        return Err(format!("added_tokens[{i}] lacks an id or a content"));
                    };
                    added.push((id, content.to_string()));
                }
            }
            Some(_) => return Err("added_tokens is not a list".into()),
        }
        added.sort();
        Ok(TokenizerVocab { vocab, added })
    }

    /// Number of ids: the largest plus one.
    pub(crate) fn num_ids(&self) -> usize {
        self.vocab
            .iter()
            .chain(&self.added)
            .map(|&(id, _)| usize::try_from(id).unwrap_or(usize::MAX).saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Why `self` is not `want`, naming the first differing token.
    pub(crate) fn differs_from(&self, want: &TokenizerVocab) -> Option<String> {
        first_difference("model.vocab", &self.vocab, &want.vocab)
            .or_else(|| first_difference("added_tokens", &self.added, &want.added))
    }
}

/// The first entry, in id order, where `found` and `want` differ.
fn first_difference(what: &str, found: &[(u64, String)], want: &[(u64, String)]) -> Option<String> {
    let i = found
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(found.len().min(want.len()));
    match (found.get(i), want.get(i)) {
        (Some((fi, f)), Some((wi, w))) => Some(format!(
            "{what} differs from the expected tokenizer at token {f:?} (id {fi}), \
             where {w:?} (id {wi}) is expected"
        )),
        (Some((fi, f)), None) => Some(format!(
            "{what} has token {f:?} (id {fi}) beyond the expected tokenizer's"
        )),
        (None, Some((wi, w))) => Some(format!(
            "{what} lacks token {w:?} (id {wi}) of the expected tokenizer"
        )),
        (None, None) => None,
    }
}
