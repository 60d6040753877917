//! Models ⇄ bytes, through burn's own record format (burnpack), behind a small header that says
//! what the bytes are: which role, which model shape, which vocabulary. A checkpoint made for
//! another config or vocabulary is refused by the header before burn sees it.
//!
//! ```text
//! "RLHFLAB" 0x01 | u32 little-endian header length | header JSON | burnpack bytes
//! ```
//!
//! On WebGPU, burn's `into_record` reads each parameter synchronously, which panics in the page.
//! So saving first gathers every float parameter (no read), reads them all in one async
//! transaction, and maps them into the same module structure on the CPU backend, where
//! `into_record` is a plain memory copy.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, TensorData, Transaction};
use serde::{Deserialize, Serialize};

use crate::engine::model::config::ModelConfig;
use crate::error::{LabError, Result};

const MAGIC: &[u8; 8] = b"RLHFLAB\x01";
/// Largest checkpoint accepted on load (the `small` preset is ~3 MB).
pub const MAX_CHECKPOINT_BYTES: usize = 64 << 20;

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointHeader {
    /// `base`, `sft` (π_ref), `reward`, `value`, `policy`, `dpo`.
    pub role: String,
    /// `gpt` (language model) or `scalar` (trunk + scalar head).
    pub architecture: String,
    pub model: ModelConfig,
    /// The tokenizer fingerprint the model was trained with.
    pub vocab: String,
    /// Anything the role needs besides weights (e.g. the stage's final metrics).
    #[serde(default)]
    pub note: serde_json::Value,
    /// Length and FNV-1a checksum of the weights that follow, so a truncated or corrupted file is
    /// refused here, before burn parses it. Filled in by `encode`.
    #[serde(default)]
    pub record_len: usize,
    #[serde(default)]
    pub record_checksum: String,
    /// FNV-1a of the header itself (serialized with this field empty), so a damaged note or
    /// setting is refused too. Filled in by `encode`; absent in checkpoints made before it was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header_checksum: String,
}

/// FNV-1a over the bytes: not cryptographic, only a guard against damage.
fn checksum(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    format!("{hash:016x}")
}

/// The header's own checksum: over its JSON with `header_checksum` empty.
fn header_checksum(header: &CheckpointHeader) -> String {
    let unsigned = CheckpointHeader { header_checksum: String::new(), ..header.clone() };
    checksum(&serde_json::to_vec(&unsigned).expect("headers serialize"))
}

pub fn encode(header: &CheckpointHeader, record: &[u8]) -> Vec<u8> {
    let mut header = CheckpointHeader { record_len: record.len(), record_checksum: checksum(record), header_checksum: String::new(), ..header.clone() };
    header.header_checksum = header_checksum(&header);
    let json = serde_json::to_vec(&header).expect("headers serialize");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + record.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(record);
    out
}

/// Splits checkpoint bytes into the header and burn's record, refusing anything malformed.
pub fn decode(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8])> {
    let refuse = |why: &str| Err(LabError::Checkpoint(why.to_string()));
    if bytes.len() > MAX_CHECKPOINT_BYTES {
        return refuse(&format!("the file is {} bytes; a checkpoint of this lab is at most {MAX_CHECKPOINT_BYTES}", bytes.len()));
    }
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return refuse("this is not an rlhf-lab checkpoint (the file does not start with its signature)");
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let Some(json) = bytes.get(12..12 + len) else {
        return refuse("the file is truncated inside its header");
    };
    let header: CheckpointHeader =
        serde_json::from_slice(json).map_err(|e| LabError::Checkpoint(format!("its header is not valid: {e}")))?;
    if !header.header_checksum.is_empty() && header.header_checksum != header_checksum(&header) {
        return refuse("its header does not match its checksum: the file is corrupted");
    }
    let record = &bytes[12 + len..];
    if record.is_empty() {
        return refuse("the file holds a header but no weights");
    }
    if record.len() != header.record_len {
        return refuse(&format!("the weights are {} bytes, the header says {}: the file is truncated or padded", record.len(), header.record_len));
    }
    if checksum(record) != header.record_checksum {
        return refuse("the weights do not match their checksum: the file is corrupted");
    }
    Ok((header, record))
}

/// Checks a header against what the lab expects to load here.
pub fn check_header(header: &CheckpointHeader, architecture: &str, model: &ModelConfig, vocab: &str) -> Result<()> {
    if header.architecture != architecture {
        return Err(LabError::Checkpoint(format!(
            "it holds a {} model ({}), but a {architecture} model is needed here",
            header.architecture, header.role
        )));
    }
    if header.vocab != vocab {
        return Err(LabError::Checkpoint(format!("it was made for vocabulary {}, this lab uses {vocab}", header.vocab)));
    }
    if &header.model != model {
        return Err(LabError::Checkpoint(format!(
            "it was made for a model with d_model={}, n_layers={}, n_heads={}, vocab={}, context={}; this lab's preset has d_model={}, n_layers={}, n_heads={}, vocab={}, context={}",
            header.model.d_model, header.model.n_layers, header.model.n_heads, header.model.vocab_size, header.model.context_length,
            model.d_model, model.n_layers, model.n_heads, model.vocab_size, model.context_length
        )));
    }
    Ok(())
}

/// burn's record bytes of `module`, read from any device without a synchronous readback.
pub async fn record_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    struct Gather {
        transaction: Option<Transaction>,
        count: usize,
    }
    impl ModuleVisitor for Gather {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.shape().num_elements();
            let tensor = param.val().reshape([n]);
            self.transaction = Some(self.transaction.take().unwrap_or_default().register(tensor));
            self.count += 1;
        }
    }
    struct Place {
        data: std::vec::IntoIter<TensorData>,
        device: Device,
    }
    impl ModuleMapper for Place {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let shape = value.shape();
            let values: Vec<f32> = self.data.next().expect("one datum per parameter").iter::<f32>().collect();
            let copy = Tensor::<D>::from_data(TensorData::new(values, shape), &self.device);
            Param::from_mapped_value(id, copy, mapper)
        }
    }
    let mut gather = Gather { transaction: None, count: 0 };
    module.visit(&mut gather);
    let data = match gather.transaction {
        // One round trip for every parameter: a CPU–GPU sync point.
        Some(transaction) => {
            crate::engine::readback::count_readback();
            transaction.execute_async().await.map_err(|e| LabError::Device(format!("reading weights: {e:?}")))?
        }
        None => Vec::new(),
    };
    let copy = module.clone().map(&mut Place { data: data.into_iter(), device: Device::flex() });
    let bytes = copy.into_record().into_bytes().map_err(|e| LabError::Checkpoint(format!("encoding weights: {e:?}")))?;
    Ok(bytes.to_vec())
}

/// Loads burn's record bytes into `module` (a model of the right shape on the target device).
pub fn load_record<M: Module>(module: M, record: &[u8]) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(record.to_vec()))
        .map_err(|e| LabError::Checkpoint(format!("the weights are not a valid burn record: {e:?}")))?;
    module.try_load_record(record).map_err(|e| LabError::Checkpoint(format!("the weights do not fit this model: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Gpt;
    use crate::engine::model::config::Preset;
    use crate::rng::Rng;

    fn logits(model: &Gpt) -> Vec<f32> {
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 9], [1, 4]), &Device::flex());
        model.forward(tokens).into_data().iter::<f32>().collect()
    }

    #[test]
    fn a_model_round_trips_through_bytes_exactly() {
        let device = Device::flex();
        let config = Preset::Micro.model(20);
        let model = Gpt::new(&config, &mut Rng::new(1), &device);
        let header = CheckpointHeader { role: "sft".into(), architecture: "gpt".into(), model: config.clone(), vocab: "v".into(), note: serde_json::json!({"step": 3}), record_len: 0, record_checksum: String::new(), header_checksum: String::new() };
        let bytes = encode(&header, &pollster::block_on(record_bytes(&model)).unwrap());
        let (read_header, record) = decode(&bytes).unwrap();
        assert_eq!((read_header.role.as_str(), &read_header.model, &read_header.note), ("sft", &header.model, &header.note));
        assert_eq!(read_header.record_len, record.len());
        let other = Gpt::new(&config, &mut Rng::new(2), &device);
        assert_ne!(logits(&other), logits(&model));
        let loaded = load_record(other, record).unwrap();
        assert_eq!(logits(&loaded), logits(&model));
    }

    #[test]
    fn malformed_or_mismatched_checkpoints_are_refused_with_a_reason() {
        let device = Device::flex();
        let config = Preset::Micro.model(20);
        let model = Gpt::new(&config, &mut Rng::new(1), &device);
        let header = CheckpointHeader { role: "sft".into(), architecture: "gpt".into(), model: config.clone(), vocab: "v".into(), note: serde_json::Value::Null, record_len: 0, record_checksum: String::new(), header_checksum: String::new() };
        let bytes = encode(&header, &pollster::block_on(record_bytes(&model)).unwrap());
        assert!(decode(b"hello").unwrap_err().to_string().contains("not an rlhf-lab checkpoint"));
        assert!(decode(&bytes[..20]).unwrap_err().to_string().contains("truncated"));
        assert!(decode(&bytes[..bytes.len() - 1]).unwrap_err().to_string().contains("truncated"));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 100;
        flipped[last] ^= 0x40;
        assert!(decode(&flipped).unwrap_err().to_string().contains("corrupted"));
        // A byte of the header that leaves it valid JSON (a letter of the role) is caught by the
        // header's own checksum.
        let mut renamed = bytes.clone();
        let at = renamed.windows(5).position(|w| w == b"\"sft\"").unwrap() + 1;
        renamed[at] = b't';
        assert!(decode(&renamed).unwrap_err().to_string().contains("header does not match its checksum"));
        let (h, record) = decode(&bytes).unwrap();
        let tiny = Preset::Tiny.model(20);
        assert!(check_header(&h, "gpt", &tiny, "v").unwrap_err().to_string().contains("d_model=32"));
        assert!(check_header(&h, "gpt", &config, "w").unwrap_err().to_string().contains("vocabulary"));
        assert!(check_header(&h, "scalar", &config, "v").is_err());
        // burn itself refuses weights of the wrong shape, and corrupted bytes.
        let bigger = Gpt::new(&tiny, &mut Rng::new(1), &device);
        assert!(load_record(bigger, record).is_err());
        let mut corrupt = record.to_vec();
        corrupt.truncate(corrupt.len() / 2);
        assert!(load_record(Gpt::new(&config, &mut Rng::new(1), &device), &corrupt).is_err());
    }
}
