//! Snapshots of a trainer in the middle of its stage: the model(s), the optimizer's moments and
//! every counter and random stream the next step depends on. The page's worker stores one after
//! every step, so a reload or a crash resumes where the stage was and loses at most the step in
//! flight.
//!
//! ```text
//! "RLHFSNP" 0x01 | u32 meta length | meta JSON | for each blob: u64 length, bytes | u64 FNV-1a of all before
//! ```
//!
//! The meta names the stage and carries its settings; a snapshot taken under other settings, or
//! for another stage, is refused rather than half-applied.

use burn::prelude::*;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{LabError, Result};

const MAGIC: &[u8; 8] = b"RLHFSNP\x01";

fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// What every snapshot says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta<T> {
    /// `sft`, `reward`, `ppo`, `dpo`.
    pub stage: String,
    /// The stage's settings when the snapshot was taken, as JSON.
    pub settings: serde_json::Value,
    /// The trainer's own counters and streams.
    pub state: T,
}

pub fn pack<T: Serialize>(meta: &Meta<T>, blobs: &[Vec<u8>]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).expect("snapshots serialize");
    let mut out = Vec::with_capacity(json.len() + blobs.iter().map(|b| b.len() + 8).sum::<usize>() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for blob in blobs {
        out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        out.extend_from_slice(blob);
    }
    let checksum = fnv(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

pub fn unpack<T: DeserializeOwned>(bytes: &[u8], stage: &str, settings: &serde_json::Value) -> Result<(T, Vec<Vec<u8>>)> {
    let refuse = |why: String| Err(LabError::Checkpoint(format!("this {stage} snapshot cannot be resumed: {why}")));
    if bytes.len() < MAGIC.len() + 12 || &bytes[..MAGIC.len()] != MAGIC {
        return refuse("it is not a snapshot of this lab".into());
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    if fnv(body) != u64::from_le_bytes(tail.try_into().unwrap()) {
        return refuse("it is damaged (its checksum does not match)".into());
    }
    let len = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
    let Some(json) = body.get(12..12 + len) else { return refuse("it is truncated".into()) };
    let meta: Meta<T> = serde_json::from_slice(json).map_err(|e| LabError::Checkpoint(format!("this {stage} snapshot's description is not valid: {e}")))?;
    if meta.stage != stage {
        return refuse(format!("it was taken in the {} stage", meta.stage));
    }
    if &meta.settings != settings {
        return refuse("it was taken with other settings for this stage".into());
    }
    let mut blobs = Vec::new();
    let mut at = 12 + len;
    while at < body.len() {
        let Some(head) = body.get(at..at + 8) else { return refuse("it is truncated".into()) };
        let n = u64::from_le_bytes(head.try_into().unwrap()) as usize;
        let Some(blob) = body.get(at + 8..at + 8 + n) else { return refuse("it is truncated".into()) };
        blobs.push(blob.to_vec());
        at += 8 + n;
    }
    Ok((meta.state, blobs))
}

/// Little-endian f32 bytes of a device vector (one readback).
pub async fn vector_bytes(tensor: Tensor<1>) -> Result<Vec<u8>> {
    crate::engine::readback::count_readback();
    let data = tensor.into_data_async().await.map_err(|e| LabError::Device(format!("reading optimizer state: {e:?}")))?;
    Ok(data.iter::<f32>().flat_map(f32::to_le_bytes).collect())
}

pub fn vector_from_bytes(bytes: &[u8], device: &Device) -> Result<Tensor<1>> {
    if bytes.len() % 4 != 0 {
        return Err(LabError::Checkpoint("optimizer state has a partial number".into()));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let n = values.len();
    Ok(Tensor::from_data(burn::tensor::TensorData::new(values, [n]), device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_refuses_damage_and_other_settings() {
        let meta = Meta { stage: "sft".into(), settings: serde_json::json!({"steps": 3}), state: (7u32, "x".to_string()) };
        let bytes = pack(&meta, &[vec![1, 2, 3], vec![], vec![9; 10]]);
        let (state, blobs): ((u32, String), _) = unpack(&bytes, "sft", &serde_json::json!({"steps": 3})).unwrap();
        assert_eq!(state, (7, "x".into()));
        assert_eq!(blobs, vec![vec![1, 2, 3], vec![], vec![9; 10]]);
        assert!(unpack::<(u32, String)>(&bytes, "ppo", &serde_json::json!({"steps": 3})).is_err());
        assert!(unpack::<(u32, String)>(&bytes, "sft", &serde_json::json!({"steps": 4})).unwrap_err().to_string().contains("other settings"));
        let mut damaged = bytes.clone();
        damaged[20] ^= 1;
        assert!(unpack::<(u32, String)>(&damaged, "sft", &serde_json::json!({"steps": 3})).unwrap_err().to_string().contains("damaged"));
        assert!(unpack::<(u32, String)>(&bytes[..bytes.len() - 3], "sft", &serde_json::json!({"steps": 3})).is_err());
    }

    /// A resumed stage must take exactly the steps it would have taken, so every f64 of a
    /// trainer's state (PPO's running sums, the KL coefficient) must come back bit for bit.
    /// serde_json parses floats correctly rounded only with its `float_roundtrip` feature;
    /// without it, some values come back one ulp off (seen: a PPO `*_avg` after resuming).
    #[test]
    fn every_f64_comes_back_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(1);
        let values: Vec<f64> = (0..20_000)
            .map(|i| {
                // Half arbitrary bit patterns, half sums of f32s as the trainers make them.
                if i % 2 == 0 { f64::from_bits(rng.next_u64()) } else { f64::from(rng.normal()) + f64::from(rng.uniform() * 1e-3) }
            })
            .filter(|v| v.is_finite())
            .collect();
        let meta = Meta { stage: "ppo".into(), settings: serde_json::json!({}), state: values.clone() };
        let (back, _): (Vec<f64>, _) = unpack(&pack(&meta, &[]), "ppo", &serde_json::json!({})).unwrap();
        let differ = values.iter().zip(&back).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{differ} of {} values changed in a snapshot", values.len());
    }
}
