//! Reading `torch.save` files: the zip container of PyTorch >= 1.6 and the
//! legacy stream of older versions, through the restricted unpickler.
//!
//! Zip: `<archive>/data.pkl` holds the pickle, `<archive>/data/<key>` each
//! storage's raw bytes. Legacy: five pickles back to back (magic number,
//! protocol version, system info, the object, the storage keys), then each
//! storage as an 8-byte element count followed by its bytes, in key order.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use burn::tensor::TensorData;

use std::rc::Rc;

use super::pickle::{DType, PickleError, TensorRef, Value, unpickle};
use super::state_dict::{StateDict, abbreviate};
use crate::error::{Error, Result};

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// 0x1950a86a20f9469cfc6c as the LONG1 opcode writes it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `bytes` look like a `torch.save` file.
pub fn is_pytorch(bytes: &[u8]) -> bool {
    bytes.starts_with(ZIP_MAGIC) || (bytes.len() > 2 && bytes[0] == 0x80 && bytes[2] == 0x8a)
}

/// Read a PyTorch checkpoint's state dict. Nothing in the file is executed.
pub fn read(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let fail = |why: String| Error::checkpoint(path, why);
    let pickle_err = |e: PickleError| Error::checkpoint(path, e.to_string());
    let (root, storages) = if bytes.starts_with(ZIP_MAGIC) {
        read_zip(bytes).map_err(|e| match e {
            ContainerError::Pickle(p) => pickle_err(p),
            ContainerError::Other(s) => fail(s),
        })?
    } else {
        read_legacy(bytes).map_err(|e| match e {
            ContainerError::Pickle(p) => pickle_err(p),
            ContainerError::Other(s) => fail(s),
        })?
    };
    let tensors = find_state_dict(&root).map_err(fail)?;
    let mut dict = StateDict::default();
    let mut budget = MAX_ELEMENTS;
    for (name, t) in tensors {
        let data = materialize(&t, &storages, &mut budget).map_err(|why| fail(format!("tensor {name}: {why}")))?;
        dict.insert(name, data);
    }
    if dict.is_empty() {
        return Err(fail("holds no tensors".into()));
    }
    Ok(dict)
}

enum ContainerError {
    Pickle(PickleError),
    Other(String),
}

impl From<PickleError> for ContainerError {
    fn from(e: PickleError) -> Self {
        Self::Pickle(e)
    }
}

impl From<String> for ContainerError {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

/// Raw bytes of each storage, by key.
type Storages = HashMap<String, Vec<u8>>;

fn read_zip(bytes: &[u8]) -> std::result::Result<(Value, Storages), ContainerError> {
    let corrupt = |e: zip::result::ZipError| format!("corrupt or truncated zip archive ({e})");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(corrupt)?;
    let names: Vec<String> =
        archive.file_names().map(|n| n.map(|n| n.into_owned())).collect::<Result<_, _>>().map_err(corrupt)?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| "zip archive has no data.pkl: not a torch.save file".to_string())?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if let Some(order) = names.iter().find(|n| **n == format!("{prefix}byteorder")) {
        let mut s = String::new();
        archive.by_name(order).map_err(corrupt)?.read_to_string(&mut s).map_err(|e| e.to_string())?;
        if s.trim() != "little" {
            return Err(format!("stored {} byte order is not supported", s.trim()).into());
        }
    }
    // Entries may be compressed: read each within what is left of the budget,
    // so a small archive cannot inflate into gigabytes.
    let mut budget = MAX_ELEMENTS as u64 * 4;
    let mut read_entry = |name: &str| -> std::result::Result<Vec<u8>, String> {
        let entry = archive.by_name(name).map_err(corrupt)?;
        if entry.size() > budget {
            return Err(format!("{name} unpacks to {} bytes, more than a checkpoint may hold", entry.size()));
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.take(budget + 1).read_to_end(&mut buf).map_err(|e| format!("reading {name}: {e} (truncated file?)"))?;
        budget = budget.checked_sub(buf.len() as u64).ok_or_else(|| format!("{name} unpacks to more than a checkpoint may hold"))?;
        Ok(buf)
    };
    let pickle = read_entry(&pkl)?;
    let (root, _) = unpickle(&pickle)?;
    let mut storages = Storages::new();
    let data_prefix = format!("{prefix}data/");
    for name in names.iter().filter(|n| n.starts_with(&data_prefix)) {
        storages.insert(name[data_prefix.len()..].to_string(), read_entry(name)?);
    }
    Ok((root, storages))
}

fn read_legacy(bytes: &[u8]) -> std::result::Result<(Value, Storages), ContainerError> {
    let mut pos = 0;
    let mut next = |what: &str| -> std::result::Result<Value, ContainerError> {
        let (v, n) = unpickle(&bytes[pos..]).map_err(|e| match e {
            PickleError::Malformed(why) => ContainerError::Other(format!("not a PyTorch checkpoint: {what} is unreadable ({why})")),
            forbidden => ContainerError::Pickle(forbidden),
        })?;
        pos += n;
        Ok(v)
    };
    match next("the magic number")? {
        Value::BigInt(b) if *b == LEGACY_MAGIC => {}
        _ => return Err("not a PyTorch checkpoint (no zip archive, no legacy magic number)".to_string().into()),
    }
    match next("the protocol version")? {
        Value::Int(1001) => {}
        Value::Int(v) => return Err(format!("unsupported legacy protocol version {v}").into()),
        other => return Err(format!("legacy protocol version is a {}, not an int", other.kind()).into()),
    }
    if let Value::Dict(info) = next("the system info")? {
        let little = info.iter().any(|(k, v)| matches!((k, v), (Value::Str(k), Value::Bool(true)) if &**k == "little_endian"));
        if !little {
            return Err("big-endian legacy checkpoints are not supported".to_string().into());
        }
    }
    let root = next("the state dict")?;
    let keys = match next("the storage keys")? {
        Value::List(keys) => keys,
        _ => return Err("storage key list is missing".to_string().into()),
    };
    // Element sizes come from the storages the pickle referenced.
    let mut sizes = HashMap::new();
    collect_storage_sizes(&root, &mut sizes);
    let mut storages = Storages::new();
    for key in keys.iter() {
        let Value::Str(key) = key else { return Err("storage key is not a string".to_string().into()) };
        let key = key.to_string();
        let elem = *sizes.get(&key).ok_or_else(|| format!("storage {key} is not used by any tensor"))?;
        let count_bytes = bytes.get(pos..pos + 8).ok_or_else(|| "file is truncated (storage header)".to_string())?;
        let count = u64::from_le_bytes(count_bytes.try_into().expect("8 bytes")) as usize;
        pos += 8;
        let len = count.checked_mul(elem).ok_or_else(|| "storage size overflows".to_string())?;
        let data = bytes
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| format!("file is truncated (storage {key} needs {len} bytes)"))?;
        pos += len;
        storages.insert(key, data.to_vec());
    }
    Ok((root, storages))
}

fn collect_storage_sizes(v: &Value, out: &mut HashMap<String, usize>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.storage.key.clone(), t.storage.dtype.size());
        }
        Value::List(items) | Value::Tuple(items) => items.iter().for_each(|i| collect_storage_sizes(i, out)),
        Value::Dict(items) => items.iter().for_each(|(_, i)| collect_storage_sizes(i, out)),
        _ => {}
    }
}

/// The `name -> tensor` dict in the file: the top level, or the one nested
/// dict of tensors (as in `{"state_dict": ..., "epoch": 5}`).
fn find_state_dict(root: &Value) -> std::result::Result<Vec<(String, Rc<TensorRef>)>, String> {
    let Value::Dict(items) = root else { return Err("top level is not a dict of tensors".into()) };
    let has_tensors = |items: &[(Value, Value)]| items.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    if has_tensors(items) {
        return Ok(items
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => Some((k.to_string(), t.clone())),
                _ => None,
            })
            .collect());
    }
    let keys: Vec<&str> = items.iter().filter_map(|(k, _)| if let Value::Str(k) = k { Some(&**k) } else { None }).collect();
    let nested: Vec<(&str, &Value)> = items
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), v @ Value::Dict(d)) if has_tensors(d) => Some((&**k, v)),
            _ => None,
        })
        .collect();
    match nested.as_slice() {
        [(_, one)] => find_state_dict(one),
        [] => Err(format!("holds no tensors (top-level keys: {})", abbreviate_keys(&keys))),
        several => Err(format!(
            "holds several state dicts ({}); extract one with PyTorch first",
            abbreviate_keys(&several.iter().map(|(k, _)| *k).collect::<Vec<_>>())
        )),
    }
}

/// Keys for an error message, each cut short (a crafted file's may be long), at most a few.
fn abbreviate_keys(keys: &[&str]) -> String {
    let short = |k: &&str| match k.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &k[..at]),
        None => k.to_string(),
    };
    abbreviate(&keys.iter().map(short).collect::<Vec<_>>(), ", ")
}

/// The most elements a checkpoint may hold, all tensors together: 2^28 (1 GiB
/// of f32), over ten times the largest network this program builds
/// (a U-Net 256 with ngf 64 has 54 M). A crafted file can describe far more
/// than it stores (a stride-0 view of one number as 2^40 elements); the
/// sizes are checked against this before anything is allocated.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Gather a tensor's elements (any strides) into contiguous f32 data.
/// Integer tensors (batch norm's counter) stay i64. `budget` is what is left
/// of [`MAX_ELEMENTS`]; this tensor's elements are taken from it.
fn materialize(t: &TensorRef, storages: &Storages, budget: &mut usize) -> std::result::Result<TensorData, String> {
    let bytes = storages.get(&t.storage.key).ok_or_else(|| format!("storage {} is missing (truncated file?)", t.storage.key))?;
    let elem = t.storage.dtype.size();
    let available = bytes.len() / elem;
    if let Some(numel) = t.storage.numel
        && numel > available
    {
        return Err(format!("storage {} is truncated ({available} of {numel} elements)", t.storage.key));
    }
    let n = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= *budget)
        .ok_or_else(|| {
            format!("shape {:?} has more elements than a checkpoint may hold ({MAX_ELEMENTS} in all)", t.shape)
        })?;
    *budget -= n;
    let mut index = Vec::with_capacity(n);
    if n > 0 {
        // The furthest element read; checked arithmetic, as shapes and strides come from the file.
        let last = t.shape.iter().zip(&t.stride).try_fold(t.offset, |acc, (s, st)| (s - 1).checked_mul(*st)?.checked_add(acc));
        if last.is_none_or(|last| last >= available) {
            return Err(format!("reads past the end of storage {}", t.storage.key));
        }
        let mut pos = vec![0usize; t.shape.len()];
        for _ in 0..n {
            index.push(t.offset + pos.iter().zip(&t.stride).map(|(p, s)| p * s).sum::<usize>());
            for d in (0..pos.len()).rev() {
                pos[d] += 1;
                if pos[d] < t.shape[d] {
                    break;
                }
                pos[d] = 0;
            }
        }
    }
    let at = |i: usize| &bytes[i * elem..(i + 1) * elem];
    let shape = t.shape.clone();
    Ok(match t.storage.dtype {
        DType::F32 => TensorData::new(index.iter().map(|&i| f32::from_le_bytes(at(i).try_into().unwrap())).collect(), shape),
        DType::F64 => {
            TensorData::new(index.iter().map(|&i| f64::from_le_bytes(at(i).try_into().unwrap()) as f32).collect(), shape)
        }
        DType::F16 => TensorData::new(
            index.iter().map(|&i| half::f16::from_le_bytes(at(i).try_into().unwrap()).to_f32()).collect(),
            shape,
        ),
        DType::BF16 => TensorData::new(
            index.iter().map(|&i| half::bf16::from_le_bytes(at(i).try_into().unwrap()).to_f32()).collect(),
            shape,
        ),
        DType::I64 => TensorData::new(index.iter().map(|&i| i64::from_le_bytes(at(i).try_into().unwrap())).collect(), shape),
        other => return Err(format!("{other:?} tensors are not model weights")),
    })
}
