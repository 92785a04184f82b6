//! Checkpoints in the Hugging Face Llama layout: `model.safetensors` (f32,
//! `[out, in]` linear weights, Hugging Face tensor names), `config.json`
//! and the tokenizer's `tokenizer.json`, so that
//! `transformers.LlamaForCausalLM.from_pretrained(dir)` loads them.
//!
//! A checkpoint directory is written under a temporary name and renamed
//! into place, so a killed run leaves the previous checkpoint whole.
//!
//! Loading is strict: every tensor of the file must be one of the model's
//! (besides `*.rotary_emb.inv_freq` of older exports, and an `lm_head.weight`
//! equal to the embedding when the embeddings are tied), with the expected
//! shape and finite values. Saving refuses weights with NaN or infinite
//! values. [`load_checked`] also checks the tokenizer saved beside the model.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::interop::host_values;
use crate::model::{Block, Llama};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the weights file.
pub const WEIGHTS: &str = "model.safetensors";
/// Name of the model config file.
pub const CONFIG: &str = "config.json";
/// Name of the tokenizer file.
pub const TOKENIZER: &str = "tokenizer.json";

/// One named f32 tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = host_values(t).unwrap_or_default();
    HostTensor { shape, data }
}

/// The model's tensors under their Hugging Face names.
pub fn hf_tensors<B: Backend>(model: &Llama<B>) -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    let lin = |p: &Param<Tensor<B, 2>>| host(p.val().transpose());
    m.insert(EMBED.into(), host(model.embed.val()));
    for (i, l) in model.layers.iter().enumerate() {
        let n = |s: &str| format!("model.layers.{i}.{s}");
        m.insert(n("input_layernorm.weight"), host(l.attn_norm.val()));
        m.insert(n("self_attn.q_proj.weight"), lin(&l.wq));
        m.insert(n("self_attn.k_proj.weight"), lin(&l.wk));
        m.insert(n("self_attn.v_proj.weight"), lin(&l.wv));
        m.insert(n("self_attn.o_proj.weight"), lin(&l.wo));
        m.insert(n("post_attention_layernorm.weight"), host(l.mlp_norm.val()));
        m.insert(n("mlp.gate_proj.weight"), lin(&l.w_gate));
        m.insert(n("mlp.up_proj.weight"), lin(&l.w_up));
        m.insert(n("mlp.down_proj.weight"), lin(&l.w_down));
    }
    m.insert("model.norm.weight".into(), host(model.norm.val()));
    if let Some(w) = &model.lm_head {
        m.insert(HEAD.into(), lin(w));
    }
    m
}

/// Serialises tensors in the safetensors format (F32, little endian), with
/// the `format: pt` metadata `transformers` expects. The metadata has that
/// one entry: `safetensors` writes it from a `HashMap`, whose order varies
/// between calls, so a second entry would make equal models differ in bytes.
pub fn safetensors_bytes(tensors: &BTreeMap<String, HostTensor>) -> Result<Vec<u8>> {
    let bytes: Vec<(&String, &HostTensor, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let raw = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, t, raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, t, raw)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), raw)
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::Input(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Input(e.to_string()))
}

/// Parses a safetensors file (F32, F16 and BF16 tensors are read as f32).
pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bad = |m: String| Error::checkpoint(path, m);
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => return Err(bad(format!("{name}: unsupported dtype {other:?}"))),
        };
        let shape = view.shape().to_vec();
        out.insert(name, HostTensor { shape, data });
    }
    Ok(out)
}

/// Hugging Face name of the token embedding.
const EMBED: &str = "model.embed_tokens.weight";
/// Hugging Face name of the output projection.
const HEAD: &str = "lm_head.weight";
/// Name ending of the rotary inverse frequencies older Hugging Face exports
/// store (a buffer the model recomputes): allowed in a file, and ignored.
const INV_FREQ: &str = ".rotary_emb.inv_freq";

/// [`Error::NonFinite`] when `x` holds a NaN or infinite value.
fn check_finite_tensor(name: &str, x: &HostTensor) -> Result<()> {
    let count = x.data.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(Error::NonFinite {
            tensor: name.to_string(),
            count,
            total: x.data.len(),
        });
    }
    Ok(())
}

/// [`Error::NonFinite`] naming the first tensor (by name) with a NaN or
/// infinite value.
fn check_finite_tensors(tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    tensors
        .iter()
        .try_for_each(|(name, x)| check_finite_tensor(name, x))
}

/// Checks that every weight of `model` is finite: [`Error::NonFinite`]
/// names the first tensor (by its Hugging Face name, as [`hf_tensors`]
/// gives them) holding NaN or infinite values, and how many. [`save`] runs
/// it; trainers run it before they save a training state.
pub fn check_finite<B: Backend>(model: &Llama<B>) -> Result<()> {
    check_finite_tensors(&hf_tensors(model))
}

/// Builds a model from Hugging Face named tensors. Errors name a missing
/// tensor, one of the wrong shape, one with NaN or infinite values, and one
/// the model does not use (`*.rotary_emb.inv_freq` aside; with tied
/// embeddings, an `lm_head.weight` equal to the embedding is allowed).
pub fn model_from_hf<B: Backend>(
    config: &ModelConfig,
    mut t: BTreeMap<String, HostTensor>,
    device: &B::Device,
    path: &Path,
) -> Result<Llama<B>> {
    // With tied embeddings a file may still hold the head: a copy of the
    // embedding, compared with it below.
    let tied_head = match config.tie_embeddings {
        true => t.remove(HEAD),
        false => None,
    };
    let mut take = |name: &str, shape: &[usize]| -> Result<HostTensor> {
        let x = t
            .remove(name)
            .ok_or_else(|| Error::checkpoint(path, format!("missing tensor {name}")))?;
        if x.shape != shape {
            return Err(Error::checkpoint(
                path,
                format!("{name}: shape {:?}, expected {shape:?}", x.shape),
            ));
        }
        if let Err(e) = check_finite_tensor(name, &x) {
            return Err(Error::checkpoint(path, e.to_string()));
        }
        Ok(x)
    };
    fn p1<B: Backend>(x: HostTensor, d: &B::Device) -> Param<Tensor<B, 1>> {
        Param::from_tensor(Tensor::from_data(TensorData::new(x.data, [x.shape[0]]), d))
    }
    // `[out, in]` on file, `[in, out]` in the model.
    fn lin<B: Backend>(x: HostTensor, d: &B::Device) -> Param<Tensor<B, 2>> {
        let t = Tensor::<B, 2>::from_data(TensorData::new(x.data, [x.shape[0], x.shape[1]]), d);
        Param::from_tensor(t.transpose())
    }
    let (h, v, i) = (
        config.hidden_size,
        config.vocab_size,
        config.intermediate_size,
    );
    let (q, kv) = (
        config.num_heads * config.head_dim(),
        config.num_kv_heads * config.head_dim(),
    );
    let e = take(EMBED, &[v, h])?;
    if let Some(head) = tied_head {
        let same = head.shape == e.shape
            && head.data.len() == e.data.len()
            && head
                .data
                .iter()
                .zip(&e.data)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return Err(Error::checkpoint(
                path,
                format!(
                    "{HEAD} differs from {EMBED}, but config.json ties the embeddings \
                     (tie_word_embeddings)"
                ),
            ));
        }
    }
    let embed = Param::from_tensor(Tensor::from_data(TensorData::new(e.data, [v, h]), device));
    let mut layers = Vec::with_capacity(config.num_layers);
    for l in 0..config.num_layers {
        let n = |s: &str| format!("model.layers.{l}.{s}");
        layers.push(Block {
            attn_norm: p1(take(&n("input_layernorm.weight"), &[h])?, device),
            wq: lin(take(&n("self_attn.q_proj.weight"), &[q, h])?, device),
            wk: lin(take(&n("self_attn.k_proj.weight"), &[kv, h])?, device),
            wv: lin(take(&n("self_attn.v_proj.weight"), &[kv, h])?, device),
            wo: lin(take(&n("self_attn.o_proj.weight"), &[h, q])?, device),
            mlp_norm: p1(take(&n("post_attention_layernorm.weight"), &[h])?, device),
            w_gate: lin(take(&n("mlp.gate_proj.weight"), &[i, h])?, device),
            w_up: lin(take(&n("mlp.up_proj.weight"), &[i, h])?, device),
            w_down: lin(take(&n("mlp.down_proj.weight"), &[h, i])?, device),
        });
    }
    let norm = p1(take("model.norm.weight", &[h])?, device);
    let lm_head = if config.tie_embeddings {
        None
    } else {
        Some(lin(take(HEAD, &[v, h])?, device))
    };
    t.retain(|name, _| !name.ends_with(INV_FREQ));
    if let Some(first) = t.keys().next() {
        let more = match t.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return Err(Error::checkpoint(
            path,
            format!(
                "tensor {first}{more} not used by the model config.json describes \
                 ({} layers, tie_word_embeddings {})",
                config.num_layers, config.tie_embeddings
            ),
        ));
    }
    Ok(Llama {
        config: config.clone(),
        embed,
        layers,
        norm,
        lm_head,
    })
}

/// Writes `bytes` to `path` atomically: a temporary `.NAME.tmp-PID` beside
/// it (the folder is created if needed), fsync, rename. On an error the
/// temporary file is removed; a killed process leaves it (a later writer
/// of a streamed file removes such leftovers, see `experiments`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = tmp_name(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })()
    .map_err(|e| Error::io(&tmp, e))
    .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn tmp_name(path: &Path) -> PathBuf {
    tmp_name_for(path, std::process::id())
}

/// The temporary name of `path` for process `pid`: `.NAME.tmp-PID`, the
/// name every atomic writer of this workspace uses.
pub fn tmp_name_for(path: &Path, pid: u32) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp-{pid}"))
}

/// `path` with `suffix` appended to its last component.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// An empty directory beside `dir` (`dir.tmp`) to build the next version of
/// `dir` in; one left by a killed run is cleared first.
pub fn staging_dir(dir: &Path) -> Result<PathBuf> {
    let tmp = sibling(dir, ".tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

/// Puts the directory `staged` in the place of `dir` by renames (the old
/// `dir` is moved aside first and removed last), so that a whole `dir`
/// exists at every moment but between two renames.
pub fn replace_dir(staged: &Path, dir: &Path) -> Result<()> {
    let old = sibling(dir, ".old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(staged, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Finishes a [`replace_dir`] that a kill interrupted between its two
/// renames (`dir` moved aside to `dir.old`, the staged `dir.tmp` not yet
/// in place): the staged directory, complete by then, takes its place, or
/// the old one when there is none. Nothing to do otherwise.
pub fn recover_dir(dir: &Path) -> Result<()> {
    let (tmp, old) = (sibling(dir, ".tmp"), sibling(dir, ".old"));
    if dir.exists() || !old.exists() {
        return Ok(());
    }
    let from = if tmp.exists() { &tmp } else { &old };
    std::fs::rename(from, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Saves a model to `dir` (created or replaced whole): weights, config, and
/// the tokenizer file when given. Weights with NaN or infinite values are
/// an error ([`Error::NonFinite`]) and leave `dir` as it was.
pub fn save<B: Backend>(model: &Llama<B>, dir: &Path, tokenizer_json: Option<&str>) -> Result<()> {
    write_model(hf_tensors(model), &model.config, dir, tokenizer_json)
}

/// [`save`], but a model with a tied output projection is written untied,
/// its `lm_head.weight` a copy of the embedding: the same function, in the
/// layout a serving engine can reload in place. vLLM 0.32 reloads every
/// weight of a tied model but its head, which keeps the weights the server
/// started with (`docs/scale-out.md`); an untied head is reloaded.
pub fn save_untied<B: Backend>(
    model: &Llama<B>,
    dir: &Path,
    tokenizer_json: Option<&str>,
) -> Result<()> {
    let mut tensors = hf_tensors(model);
    let mut config = model.config.clone();
    if config.tie_embeddings {
        if let Some(embed) = tensors.get(EMBED).cloned() {
            tensors.insert(HEAD.into(), embed);
        }
        config.tie_embeddings = false;
    }
    write_model(tensors, &config, dir, tokenizer_json)
}

/// Writes `tensors` and `config` (and the tokenizer) to `dir` as a whole.
pub(crate) fn write_model(
    tensors: BTreeMap<String, HostTensor>,
    config: &ModelConfig,
    dir: &Path,
    tokenizer_json: Option<&str>,
) -> Result<()> {
    check_finite_tensors(&tensors)?;
    let tmp = staging_dir(dir)?;
    write_atomic(&tmp.join(WEIGHTS), &safetensors_bytes(&tensors)?)?;
    let cfg = config.hf_config_json(1, 2, 0);
    let cfg = serde_json::to_vec_pretty(&cfg).unwrap_or_default();
    write_atomic(&tmp.join(CONFIG), &cfg)?;
    if let Some(tok) = tokenizer_json {
        write_atomic(&tmp.join(TOKENIZER), tok.as_bytes())?;
    }
    replace_dir(&tmp, dir)
}

/// The model config and the named tensors of the checkpoint in `dir`
/// (after finishing an interrupted directory switch), and the weights
/// file's path for errors.
pub(crate) fn read_dir(dir: &Path) -> Result<(ModelConfig, BTreeMap<String, HostTensor>, PathBuf)> {
    recover_dir(dir)?;
    let cpath = dir.join(CONFIG);
    let text = std::fs::read(&cpath).map_err(|e| Error::io(&cpath, e))?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: cpath.clone(),
        source: e,
    })?;
    let config = ModelConfig::from_hf_config_json(&v, &cpath)?;
    let wpath = dir.join(WEIGHTS);
    let bytes = std::fs::read(&wpath).map_err(|e| Error::io(&wpath, e))?;
    let tensors = parse_safetensors(&bytes, &wpath)?;
    Ok((config, tensors, wpath))
}

/// Loads a model saved by [`save`] (or any f32/f16/bf16 Llama checkpoint of
/// a shape this crate supports).
pub fn load<B: Backend>(dir: &Path, device: &B::Device) -> Result<Llama<B>> {
    let (config, tensors, wpath) = read_dir(dir)?;
    model_from_hf(&config, tensors, device, &wpath)
}

/// [`load`], then checks the tokenizer saved beside the model,
/// `dir/tokenizer.json`, against the expected `tokenizer_json` (both in the
/// Hugging Face `tokenizers` format): the same vocabulary (`model.vocab`,
/// token to id) and the same `added_tokens` (ids and contents); other
/// fields are not compared. Errors name the file and the first differing
/// token. The model's `vocab_size` must cover the tokenizer's ids (at least
/// the largest id plus one; more is padding of the embedding).
pub fn load_checked<B: Backend>(
    dir: &Path,
    device: &B::Device,
    tokenizer_json: &str,
) -> Result<Llama<B>> {
    let want: serde_json::Value = serde_json::from_str(tokenizer_json)
        .map_err(|e| Error::Input(format!("the expected tokenizer is not JSON: {e}")))?;
    let want = crate::tokenizer_file::TokenizerVocab::from_json(&want)
        .map_err(|m| Error::Input(format!("the expected tokenizer: {m}")))?;
    let tpath = dir.join(TOKENIZER);
    let text = std::fs::read(&tpath).map_err(|e| Error::io(&tpath, e))?;
    let found: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::Json {
        path: tpath.clone(),
        source: e,
    })?;
    let found = crate::tokenizer_file::TokenizerVocab::from_json(&found)
        .map_err(|m| Error::checkpoint(&tpath, m))?;
    found
        .differs_from(&want)
        .map_or(Ok(()), |m| Err(Error::checkpoint(&tpath, m)))?;
    let model = load::<B>(dir, device)?;
    let ids = found.num_ids();
    if model.config.vocab_size < ids {
        return Err(Error::checkpoint(
            dir.join(CONFIG),
            format!(
                "vocab_size {} is below the {ids} ids of {}",
                model.config.vocab_size,
                tpath.display()
            ),
        ));
    }
    Ok(model)
}
