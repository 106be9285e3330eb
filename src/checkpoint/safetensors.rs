//! safetensors files: a JSON header (shapes, dtypes, our metadata) and raw
//! little-endian tensor bytes. Nothing to execute, and a truncated file is
//! detected from the header's offsets.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::state_dict::StateDict;
use crate::error::{Error, Result};

/// Whether `bytes` could be a safetensors file (an 8-byte header length, then `{`).
pub fn is_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[8] == b'{'
}

/// Decode a safetensors file into its tensors (as f32; i64 kept) and metadata.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<(StateDict, HashMap<String, String>)> {
    let fail = |why: String| Error::checkpoint(path, why);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidHeaderLength => {
            fail("file is truncated (shorter than its header says)".into())
        }
        e => fail(format!("not a valid safetensors file ({e})")),
    })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("corrupt or truncated safetensors file ({e})")))?;
    let mut dict = StateDict::default();
    for (name, view) in st.iter() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::new(floats(raw, 4, |b| f32::from_le_bytes(b.try_into().unwrap())), shape),
            Dtype::F64 => TensorData::new(floats(raw, 8, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32), shape),
            Dtype::F16 => TensorData::new(floats(raw, 2, |b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32()), shape),
            Dtype::BF16 => {
                TensorData::new(floats(raw, 2, |b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32()), shape)
            }
            Dtype::I64 => TensorData::new(
                raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
                shape,
            ),
            other => return Err(fail(format!("tensor {name} has dtype {other:?}, not a float"))),
        };
        dict.insert(name.to_string(), data);
    }
    Ok((dict, metadata))
}

fn floats(raw: &[u8], size: usize, f: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    raw.chunks_exact(size).map(f).collect()
}

/// Encode tensors (stored as f32, integers as i64) and metadata as safetensors bytes.
pub fn encode(dict: &StateDict, metadata: HashMap<String, String>) -> Vec<u8> {
    struct Raw {
        dtype: Dtype,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    }
    impl safetensors::View for &Raw {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.bytes)
        }
        fn data_len(&self) -> usize {
            self.bytes.len()
        }
    }
    let raws: Vec<(String, Raw)> = dict
        .iter()
        .map(|(k, d)| {
            let raw = if d.dtype() == DType::I64 {
                let v: Vec<i64> = d.try_to_vec().expect("i64 data");
                Raw { dtype: Dtype::I64, shape: d.shape().to_vec(), bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
            } else {
                let v: Vec<f32> = d.clone().convert_dtype(DType::F32).try_to_vec().expect("f32 data");
                Raw { dtype: Dtype::F32, shape: d.shape().to_vec(), bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
            };
            (k.clone(), raw)
        })
        .collect();
    if raws.is_empty() {
        return metadata_only(metadata);
    }
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::serialize(raws.iter().map(|(k, r)| (k.as_str(), r)), metadata)
        .expect("serializing in-memory tensors cannot fail")
}

/// A file of no tensors (CUT's netF without MLPs), still describing itself:
/// safetensors 0.8 writes a header it cannot read back for no tensors with
/// metadata, so the header is written here, as the format lays it out (its
/// length as a little-endian u64, then the JSON, space-padded to 8 bytes).
fn metadata_only(metadata: HashMap<String, String>) -> Vec<u8> {
    let header = if metadata.is_empty() { serde_json::json!({}) } else { serde_json::json!({ "__metadata__": metadata }) };
    let mut json = header.to_string().into_bytes();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_the_empty_file() {
        let path = Path::new("x.safetensors");
        let mut dict = StateDict::default();
        for meta in [HashMap::new(), HashMap::from([("k".to_string(), "v".to_string())])] {
            let (back, m) = decode(path, &encode(&dict, meta.clone())).unwrap();
            assert!(back.is_empty());
            assert_eq!(m, meta, "the metadata of a file without tensors");
        }
        dict.insert("a.weight".into(), TensorData::new(vec![1.5f32, -2.0], [2]));
        dict.insert("n".into(), TensorData::new(vec![7i64], Vec::<usize>::new()));
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        let (back, m) = decode(path, &encode(&dict, meta.clone())).unwrap();
        assert_eq!(m, meta);
        assert_eq!(back.get("a.weight"), dict.get("a.weight"));
        assert_eq!(back.get("n"), dict.get("n"));
    }
}
