//! A restricted unpickler for PyTorch checkpoints: it understands exactly
//! what `torch.save(model.state_dict())` writes (plain containers, tensors,
//! storages) and refuses everything else, without ever running code.
//!
//! Python's pickle is a small stack machine whose `GLOBAL` opcode imports any
//! callable and whose `REDUCE` calls it: loading an untrusted `.pth` with
//! `torch.load` (before `weights_only`) runs whatever the file asks for. Here a
//! `GLOBAL` outside the short allow-list below stops the load with an error
//! naming what was asked for, the way `torch.load(weights_only=True)` does.

use std::collections::HashMap;

/// Element types of tensor storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// `torch.FloatStorage` and friends, or the dtype objects `torch.float32` ...
    fn from_torch_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" | "float32" | "float" => Self::F32,
            "DoubleStorage" | "float64" | "double" => Self::F64,
            "HalfStorage" | "float16" | "half" => Self::F16,
            "BFloat16Storage" | "bfloat16" => Self::BF16,
            "LongStorage" | "int64" | "long" => Self::I64,
            "IntStorage" | "int32" | "int" => Self::I32,
            "ShortStorage" | "int16" | "short" => Self::I16,
            "CharStorage" | "int8" => Self::I8,
            "ByteStorage" | "uint8" => Self::U8,
            "BoolStorage" | "bool" => Self::Bool,
            _ => return None,
        })
    }
}

/// The callables a state dict needs, and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` (and the pre-0.4 `_rebuild_tensor`).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`: a tensor wrapped as `nn.Parameter`.
    RebuildParameter,
    /// A storage class (`torch.FloatStorage`) or dtype (`torch.float32`).
    DType(DType),
}

impl Global {
    fn lookup(module: &str, name: &str) -> Option<Self> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Self::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Some(Self::RebuildTensor),
            ("torch._utils", "_rebuild_parameter") => Some(Self::RebuildParameter),
            ("torch", n) => DType::from_torch_name(n).map(Self::DType),
            _ => None,
        }
    }
}

/// A storage named by a persistent id: its bytes live outside the pickle.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Elements in the storage, when the id says (the zip format does).
    pub numel: Option<usize>,
}

/// A view into a storage (`storage[offset:]` with the given shape and strides, in elements).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The file asks for a callable outside the allow-list: the hostile (or
    /// whole-model) case. Holds `module.name`.
    Forbidden(String),
    /// The bytes are not a pickle this reader understands.
    Malformed(String),
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forbidden(what) => write!(
                f,
                "refused: the pickle asks for `{what}`, which is not a tensor or a plain container \
                 (a whole pickled model, or a file that would run code under torch.load); \
                 save `model.state_dict()` instead"
            ),
            Self::Malformed(why) => write!(f, "not a readable PyTorch pickle ({why})"),
        }
    }
}

type Result<T> = std::result::Result<T, PickleError>;

fn malformed(why: impl Into<String>) -> PickleError {
    PickleError::Malformed(why.into())
}

/// Stack entries: values, or the MARK that opens a variable-length argument list.
enum Entry {
    Mark,
    Value(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Entry>,
    memo: HashMap<u32, Value>,
}

/// Parse one pickle from the start of `data`. Returns the value and the number
/// of bytes consumed (a legacy checkpoint is several pickles back to back).
pub fn unpickle(data: &[u8]) -> Result<(Value, usize)> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), memo: HashMap::new() };
    let value = m.run()?;
    Ok((value, m.pos))
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| malformed("truncated"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| malformed("truncated text argument"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| malformed("text argument is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Entry::Value(v));
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Entry::Value(v)) => Ok(v),
            Some(Entry::Mark) => Err(malformed("unexpected MARK")),
            None => Err(malformed("stack underflow")),
        }
    }

    fn top(&mut self) -> Result<&mut Value> {
        match self.stack.last_mut() {
            Some(Entry::Value(v)) => Ok(v),
            _ => Err(malformed("stack underflow")),
        }
    }

    /// Pop everything above the topmost MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|e| matches!(e, Entry::Mark))
            .ok_or_else(|| malformed("missing MARK"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|e| match e {
                Entry::Value(v) => v,
                Entry::Mark => unreachable!("split after the last mark"),
            })
            .collect())
    }

    fn memo_put(&mut self, idx: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<()> {
        let v = self.memo.get(&idx).cloned().ok_or_else(|| malformed(format!("memo {idx} is empty")))?;
        self.push(v);
        Ok(())
    }

    fn string(&mut self, len: usize) -> Result<()> {
        let b = self.take(len)?;
        let s = String::from_utf8(b.to_vec()).map_err(|_| malformed("string is not UTF-8"))?;
        self.push(Value::Str(s));
        Ok(())
    }

    fn bytes(&mut self, len: usize) -> Result<()> {
        let b = self.take(len)?.to_vec();
        self.push(Value::Bytes(b));
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let g = Global::lookup(module, name).ok_or_else(|| PickleError::Forbidden(format!("{module}.{name}")))?;
        self.push(Value::Global(g));
        Ok(())
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    self.byte()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Entry::Mark),
                b'0' => {
                    self.stack.pop().ok_or_else(|| malformed("stack underflow"))?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    self.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.uint(1)? as i64;
                    self.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.uint(2)? as i64;
                    self.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.uint(1)? } else { self.uint(4)? } as usize;
                    let b = self.take(n)?;
                    self.push(long_value(b));
                }
                b'I' | b'L' => {
                    let text = self.line()?.trim_end_matches('L');
                    let v = match text {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| malformed(format!("bad integer {t:?}")))?),
                    };
                    self.push(v);
                }
                b'G' => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.push(Value::Float(f64::from_be_bytes(b)));
                }
                b'F' => {
                    let t = self.line()?;
                    let v = t.parse().map_err(|_| malformed(format!("bad float {t:?}")))?;
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.uint(4)? as usize;
                    self.string(n)?;
                }
                0x8c => {
                    let n = self.uint(1)? as usize;
                    self.string(n)?;
                }
                0x8d => {
                    let n = self.uint(8)? as usize;
                    self.string(n)?;
                }
                b'T' => {
                    let n = self.uint(4)? as usize;
                    self.string(n)?;
                }
                b'U' => {
                    let n = self.uint(1)? as usize;
                    self.string(n)?;
                }
                b'S' => {
                    let t = self.line()?;
                    let unquoted = t
                        .strip_prefix('\'')
                        .and_then(|t| t.strip_suffix('\''))
                        .or_else(|| t.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
                        .ok_or_else(|| malformed("bad STRING argument"))?;
                    self.push(Value::Str(unquoted.to_string()));
                }
                b'V' => {
                    let t = self.line()?.to_string();
                    self.push(Value::Str(t));
                }
                b'B' => {
                    let n = self.uint(4)? as usize;
                    self.bytes(n)?;
                }
                b'C' => {
                    let n = self.uint(1)? as usize;
                    self.bytes(n)?;
                }
                0x8e => {
                    let n = self.uint(8)? as usize;
                    self.bytes(n)?;
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' | 0x8f => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(pairs(items)?));
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(malformed("stack underflow"));
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        other => return Err(malformed(format!("APPEND to a {}", other.kind()))),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        other => return Err(malformed(format!("APPENDS to a {}", other.kind()))),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.push((k, v)),
                        other => return Err(malformed(format!("SETITEM on a {}", other.kind()))),
                    }
                }
                b'u' => {
                    let items = pairs(self.pop_mark()?)?;
                    match self.top()? {
                        Value::Dict(d) => d.extend(items),
                        other => return Err(malformed(format!("SETITEMS on a {}", other.kind()))),
                    }
                }
                b'p' => {
                    let idx = self.line()?.parse().map_err(|_| malformed("bad PUT index"))?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.uint(1)? as u32;
                    self.memo_put(idx)?;
                }
                b'r' => {
                    let idx = self.uint(4)? as u32;
                    self.memo_put(idx)?;
                }
                0x94 => {
                    let idx = self.memo.len() as u32;
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let idx = self.line()?.parse().map_err(|_| malformed("bad GET index"))?;
                    self.memo_get(idx)?;
                }
                b'h' => {
                    let idx = self.uint(1)? as u32;
                    self.memo_get(idx)?;
                }
                b'j' => {
                    let idx = self.uint(4)? as u32;
                    self.memo_get(idx)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(malformed("STACK_GLOBAL needs two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = persistent_storage(pid)?;
                    self.push(storage);
                }
                b'P' => {
                    let key = self.line()?;
                    return Err(malformed(format!("text persistent id {key:?}")));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    build(self.top()?, state)?;
                }
                // NEWOBJ, NEWOBJ_EX, INST, OBJ, EXT*: class instantiation, never in a state dict.
                0x81 | 0x92 | b'i' | b'o' | 0x82..=0x84 => {
                    return Err(PickleError::Forbidden(format!("object construction (opcode 0x{op:02x})")));
                }
                _ => return Err(malformed(format!("unknown opcode 0x{op:02x}"))),
            }
        }
    }
}

fn long_value(b: &[u8]) -> Value {
    if b.len() <= 8 {
        let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(b.to_vec())
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed("odd number of dict items"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn as_usize(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(malformed(format!("{what} must be a non-negative int, got {}", other.kind()))),
    }
}

fn usize_list(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| as_usize(i, what)).collect(),
        other => Err(malformed(format!("{what} must be a tuple, got {}", other.kind()))),
    }
}

/// `('storage', storage_type, key, location, numel[, view])`: a storage whose bytes are elsewhere.
fn persistent_storage(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else { return Err(malformed("persistent id is not a tuple")) };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(Global::DType(dtype)), Value::Str(key), _location, numel, rest @ ..]
            if tag == "storage" =>
        {
            if rest.iter().any(|v| *v != Value::None) {
                return Err(malformed("storage views (PyTorch < 0.4 shared storages) are not supported"));
            }
            Ok(Value::Storage(StorageRef { key: key.clone(), dtype: *dtype, numel: Some(as_usize(numel, "storage size")?) }))
        }
        _ => Err(malformed("persistent id is not a storage")),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(g) = callable else {
        return Err(malformed(format!("REDUCE on a {}", callable.kind())));
    };
    let Value::Tuple(mut args) = args else { return Err(malformed("REDUCE arguments are not a tuple")) };
    match g {
        Global::OrderedDict => match args.pop() {
            None => Ok(Value::Dict(Vec::new())),
            Some(Value::List(items)) => {
                let mut d = Vec::new();
                for item in items {
                    match item {
                        Value::Tuple(mut kv) | Value::List(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().expect("two items");
                            let k = kv.pop().expect("two items");
                            d.push((k, v));
                        }
                        _ => return Err(malformed("OrderedDict item is not a pair")),
                    }
                }
                Ok(Value::Dict(d))
            }
            Some(other) => Err(malformed(format!("OrderedDict({})", other.kind()))),
        },
        Global::RebuildTensor => {
            if args.len() < 4 {
                return Err(malformed("_rebuild_tensor needs 4 arguments"));
            }
            let Value::Storage(storage) = args[0].clone() else {
                return Err(malformed("_rebuild_tensor: first argument is not a storage"));
            };
            let offset = as_usize(&args[1], "storage offset")?;
            let shape = usize_list(&args[2], "size")?;
            let stride = usize_list(&args[3], "stride")?;
            if shape.len() != stride.len() {
                return Err(malformed("size and stride differ in length"));
            }
            Ok(Value::Tensor(TensorRef { storage, offset, shape, stride }))
        }
        Global::RebuildParameter => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(malformed("_rebuild_parameter: first argument is not a tensor")),
        },
        Global::DType(_) => Err(malformed("a storage class was called")),
    }
}

/// `BUILD`: set an object's state. The only objects we build are dicts
/// (an `OrderedDict` carrying `_metadata`), whose state we check and drop.
fn build(target: &mut Value, state: Value) -> Result<()> {
    match (target, &state) {
        (Value::Dict(_), Value::Dict(_) | Value::None) => Ok(()),
        (Value::Tensor(_), _) => Ok(()), // tensor state after _rebuild_from_type: nothing to keep
        (t, s) => Err(malformed(format!("BUILD of a {} with a {}", t.kind(), s.kind()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_os_system() {
        // pickle.dumps of a class whose __reduce__ returns (os.system, ('echo pwned',)), protocol 2
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        match unpickle(evil) {
            Err(PickleError::Forbidden(what)) => assert_eq!(what, "posix.system"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reads_plain_containers() {
        // pickle.dumps({'a': [1, 2.5, None, True], 'b': ('x', -3)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03X\x01\x00\x00\x00xq\x04J\xfd\xff\xff\xff\x86q\x05u.";
        let (v, n) = unpickle(data).unwrap();
        assert_eq!(n, data.len());
        assert_eq!(
            v,
            Value::Dict(vec![
                (
                    Value::Str("a".into()),
                    Value::List(vec![Value::Int(1), Value::Float(2.5), Value::None, Value::Bool(true)])
                ),
                (Value::Str("b".into()), Value::Tuple(vec![Value::Str("x".into()), Value::Int(-3)])),
            ])
        );
    }

    #[test]
    fn truncated_is_malformed_not_a_panic() {
        let data = b"\x80\x02}q\x00(X\x01\x00\x00";
        assert!(matches!(unpickle(data), Err(PickleError::Malformed(_))));
    }
}
