//! A restricted unpickler for PyTorch checkpoints: it understands exactly
//! what `torch.save(model.state_dict())` writes (plain containers, tensors,
//! storages) and refuses everything else, without ever running code.
//!
//! Python's pickle is a small stack machine whose `GLOBAL` opcode imports any
//! callable and whose `REDUCE` calls it: loading an untrusted `.pth` with
//! `torch.load` (before `weights_only`) runs whatever the file asks for. Here a
//! `GLOBAL` outside the short allow-list below stops the load with an error
//! naming what was asked for, the way `torch.load(weights_only=True)` does.
//!
//! A pickle that runs no code can still ask for a lot: a memo entry pushed
//! twice, packed into a tuple and stored back doubles at every step, and
//! millions of nested tuples overflow any recursive walk. Values here are
//! shared (`Rc`), not copied, and every container knows its depth and its
//! weight, so such files stop with an error as soon as they pass
//! [`MAX_DEPTH`], [`MAX_WEIGHT`], [`MAX_BUILT`] or [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::rc::Rc;

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

/// How deeply containers may nest. A state dict nests four or five deep;
/// the bound keeps a file of millions of nested tuples from overflowing the
/// stack when the value is dropped or walked.
pub const MAX_DEPTH: u32 = 64;

/// The most a single value may weigh, counting each shared part every time
/// it appears (one per scalar and container item, plus the bytes of strings):
/// memo entries are shared, so a few hundred bytes can describe a value of
/// 2^48 items; this stops such a value before anything walks it. A state
/// dict's pickle weighs a few tens of thousands.
pub const MAX_WEIGHT: u64 = 1 << 24;

/// The most entries the stack and the memo may each hold (every opcode adds
/// at most one, so without a bound memory would grow with the file's length
/// at some 32 bytes an opcode).
pub const MAX_ENTRIES: usize = 1 << 20;

/// The most container items one pickle may build, copies made by a
/// mutation of a shared container included: a list stored in the memo and
/// appended to, again and again, is copied each time, which would make a
/// small file build values quadratic in its length.
pub const MAX_BUILT: u64 = 1 << 22;

/// An immutable, shared sequence (a list's, tuple's or dict's items) that
/// knows how deep it nests and how much it weighs. Sharing makes the memo's
/// `GET` and `DUP` cost nothing; a mutation (`APPEND` to a list that is also
/// in the memo) copies first, so values never change behind the memo's back.
#[derive(Clone, Debug, PartialEq)]
pub struct Seq<T> {
    items: Rc<Vec<T>>,
    depth: u32,
    weight: u64,
}

impl<T: Measure + Clone> Seq<T> {
    /// Items as a container holds them, refused past [`MAX_DEPTH`] or [`MAX_WEIGHT`].
    pub fn new(items: Vec<T>) -> Result<Self> {
        let mut seq = Self { items: Rc::new(Vec::new()), depth: 1, weight: 1 };
        seq.extend(items)?;
        Ok(seq)
    }

    fn extend(&mut self, items: Vec<T>) -> Result<()> {
        for item in &items {
            self.depth = self.depth.max(item.depth() + 1);
            self.weight = self.weight.saturating_add(item.weight());
        }
        check_bounds(self.depth, self.weight)?;
        Rc::make_mut(&mut self.items).extend(items);
        Ok(())
    }
}

impl<T> Seq<T> {
    /// Items a mutation would copy first: all of them while they are shared.
    fn copy_cost(&self) -> u64 {
        if Rc::strong_count(&self.items) > 1 { self.items.len() as u64 } else { 0 }
    }
}

impl<T> std::ops::Deref for Seq<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

fn check_bounds(depth: u32, weight: u64) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(malformed(format!("containers nest more than {MAX_DEPTH} deep")));
    }
    if weight > MAX_WEIGHT {
        return Err(malformed(format!("a value holds more than {MAX_WEIGHT} items (shared memo entries repeated)")));
    }
    Ok(())
}

/// Nesting depth and weight, as [`Seq`] counts them.
pub trait Measure {
    fn depth(&self) -> u32;
    fn weight(&self) -> u64;
}

impl Measure for Value {
    fn depth(&self) -> u32 {
        match self {
            Value::List(s) | Value::Tuple(s) => s.depth,
            Value::Dict(s) => s.depth,
            _ => 0,
        }
    }

    fn weight(&self) -> u64 {
        match self {
            Value::List(s) | Value::Tuple(s) => s.weight,
            Value::Dict(s) => s.weight,
            Value::Str(s) => 1 + s.len() as u64,
            Value::Bytes(b) | Value::BigInt(b) => 1 + b.len() as u64,
            Value::Tensor(t) => 1 + t.shape.len() as u64 * 2,
            _ => 1,
        }
    }
}

impl Measure for (Value, Value) {
    fn depth(&self) -> u32 {
        self.0.depth().max(self.1.depth())
    }

    fn weight(&self) -> u64 {
        self.0.weight().saturating_add(self.1.weight())
    }
}

/// A pickled value. Cloning one is cheap: what it holds is shared.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64, as little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Seq<Value>),
    Tuple(Seq<Value>),
    Dict(Seq<(Value, Value)>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// What kind of value this is, for error messages (never the value
    /// itself, which may be huge).
    pub fn kind(&self) -> &'static str {
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

    /// Items a mutation of this container would copy first.
    fn copy_cost(&self) -> u64 {
        match self {
            Value::List(s) | Value::Tuple(s) => s.copy_cost(),
            Value::Dict(s) => s.copy_cost(),
            _ => 0,
        }
    }

    fn tuple(items: Vec<Value>) -> Result<Value> {
        Ok(Value::Tuple(Seq::new(items)?))
    }

    fn list(items: Vec<Value>) -> Result<Value> {
        Ok(Value::List(Seq::new(items)?))
    }

    fn dict(items: Vec<(Value, Value)>) -> Result<Value> {
        Ok(Value::Dict(Seq::new(items)?))
    }
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The file asks for a callable outside the allow-list: the hostile (or
    /// whole-model) case. Holds `module.name`.
    Forbidden(String),
    /// The bytes are not a pickle this reader understands, or describe
    /// more than it will build.
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

/// The opcodes, under the names Python's `pickletools` gives them.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
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
    /// Container items built so far (see [`MAX_BUILT`]).
    built: u64,
}

/// Parse one pickle from the start of `data`. Returns the value and the number
/// of bytes consumed (a legacy checkpoint is several pickles back to back).
pub fn unpickle(data: &[u8]) -> Result<(Value, usize)> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), memo: HashMap::new(), built: 0 };
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

    /// A length argument of `n` bytes.
    fn len(&mut self, n: usize) -> Result<usize> {
        usize::try_from(self.uint(n)?).map_err(|_| malformed("truncated"))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| malformed("truncated text argument"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| malformed("text argument is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    /// Count `n` more container items built, refusing past [`MAX_BUILT`].
    fn charge(&mut self, n: u64) -> Result<()> {
        self.built = self.built.saturating_add(n);
        if self.built > MAX_BUILT {
            return Err(malformed(format!("builds more than {MAX_BUILT} container items (shared containers changed again and again)")));
        }
        Ok(())
    }

    /// Charge for adding `n` items to the container on top of the stack.
    fn charge_top(&mut self, n: usize) -> Result<()> {
        let cost = self.top()?.copy_cost() + n as u64;
        self.charge(cost)
    }

    fn push_entry(&mut self, e: Entry) -> Result<()> {
        if self.stack.len() >= MAX_ENTRIES {
            return Err(malformed(format!("more than {MAX_ENTRIES} values on the stack")));
        }
        self.stack.push(e);
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<()> {
        self.push_entry(Entry::Value(v))
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
        if self.memo.len() >= MAX_ENTRIES && !self.memo.contains_key(&idx) {
            return Err(malformed(format!("more than {MAX_ENTRIES} memo entries")));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<()> {
        let v = self.memo.get(&idx).cloned().ok_or_else(|| malformed(format!("memo {idx} is empty")))?;
        self.push(v)
    }

    fn string(&mut self, len: usize) -> Result<()> {
        let b = self.take(len)?;
        let s = std::str::from_utf8(b).map_err(|_| malformed("string is not UTF-8"))?;
        self.push(Value::Str(s.into()))
    }

    fn bytes(&mut self, len: usize) -> Result<()> {
        let b = self.take(len)?;
        self.push(Value::Bytes(b.into()))
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let g = Global::lookup(module, name).ok_or_else(|| PickleError::Forbidden(format!("{module}.{name}")))?;
        self.push(Value::Global(g))
    }

    /// Run opcodes up to `STOP`.
    fn run(&mut self) -> Result<Value> {
        loop {
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    self.byte()?;
                }
                op::FRAME => {
                    self.take(8)?; // a length hint
                }
                op::STOP => return self.pop(),
                op::MARK => self.push_entry(Entry::Mark)?,
                op::POP => {
                    self.stack.pop().ok_or_else(|| malformed("stack underflow"))?;
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                op::NONE => self.push(Value::None)?,
                op::NEWTRUE => self.push(Value::Bool(true))?,
                op::NEWFALSE => self.push(Value::Bool(false))?,
                op::BININT => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    self.push(Value::Int(v))?;
                }
                op::BININT1 => {
                    let v = self.uint(1)? as i64;
                    self.push(Value::Int(v))?;
                }
                op::BININT2 => {
                    let v = self.uint(2)? as i64;
                    self.push(Value::Int(v))?;
                }
                op::LONG1 | op::LONG4 => {
                    let n = if code == op::LONG1 { self.len(1)? } else { self.len(4)? };
                    let b = self.take(n)?;
                    self.push(long_value(b))?;
                }
                op::INT | op::LONG => {
                    let text = self.line()?.trim_end_matches('L');
                    let v = match text {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| malformed(format!("bad integer {}", quote(t))))?),
                    };
                    self.push(v)?;
                }
                op::BINFLOAT => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.push(Value::Float(f64::from_be_bytes(b)))?;
                }
                op::FLOAT => {
                    let t = self.line()?;
                    let v = t.parse().map_err(|_| malformed(format!("bad float {}", quote(t))))?;
                    self.push(Value::Float(v))?;
                }
                op::BINUNICODE | op::BINSTRING => {
                    let n = self.len(4)?;
                    self.string(n)?;
                }
                op::SHORT_BINUNICODE | op::SHORT_BINSTRING => {
                    let n = self.len(1)?;
                    self.string(n)?;
                }
                op::BINUNICODE8 => {
                    let n = self.len(8)?;
                    self.string(n)?;
                }
                op::STRING => {
                    let t = self.line()?;
                    let unquoted = t
                        .strip_prefix('\'')
                        .and_then(|t| t.strip_suffix('\''))
                        .or_else(|| t.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
                        .ok_or_else(|| malformed("bad STRING argument"))?;
                    self.push(Value::Str(unquoted.into()))?;
                }
                op::UNICODE => {
                    let t = self.line()?;
                    self.push(Value::Str(t.into()))?;
                }
                op::BINBYTES => {
                    let n = self.len(4)?;
                    self.bytes(n)?;
                }
                op::SHORT_BINBYTES => {
                    let n = self.len(1)?;
                    self.bytes(n)?;
                }
                op::BINBYTES8 => {
                    let n = self.len(8)?;
                    self.bytes(n)?;
                }
                op::EMPTY_DICT => self.push(Value::dict(Vec::new())?)?,
                // Sets are read as lists: a state dict holds none, and their items are only checked.
                op::EMPTY_LIST | op::EMPTY_SET => self.push(Value::list(Vec::new())?)?,
                op::EMPTY_TUPLE => self.push(Value::tuple(Vec::new())?)?,
                op::DICT => {
                    let items = self.pop_mark()?;
                    self.charge(items.len() as u64)?;
                    self.push(Value::dict(pairs(items)?)?)?;
                }
                op::LIST | op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.charge(items.len() as u64)?;
                    self.push(Value::list(items)?)?;
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.charge(items.len() as u64)?;
                    self.push(Value::tuple(items)?)?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = (code - op::TUPLE1 + 1) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::tuple(items)?)?;
                }
                op::APPEND => {
                    let v = self.pop()?;
                    self.charge_top(1)?;
                    match self.top()? {
                        Value::List(l) => l.extend(vec![v])?,
                        other => return Err(malformed(format!("APPEND to a {}", other.kind()))),
                    }
                }
                op::APPENDS | op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    self.charge_top(items.len())?;
                    match self.top()? {
                        Value::List(l) => l.extend(items)?,
                        other => return Err(malformed(format!("APPENDS to a {}", other.kind()))),
                    }
                }
                op::SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.charge_top(1)?;
                    match self.top()? {
                        Value::Dict(d) => d.extend(vec![(k, v)])?,
                        other => return Err(malformed(format!("SETITEM on a {}", other.kind()))),
                    }
                }
                op::SETITEMS => {
                    let items = pairs(self.pop_mark()?)?;
                    self.charge_top(items.len())?;
                    match self.top()? {
                        Value::Dict(d) => d.extend(items)?,
                        other => return Err(malformed(format!("SETITEMS on a {}", other.kind()))),
                    }
                }
                op::PUT => {
                    let idx = self.line()?.parse().map_err(|_| malformed("bad PUT index"))?;
                    self.memo_put(idx)?;
                }
                op::BINPUT => {
                    let idx = self.uint(1)? as u32;
                    self.memo_put(idx)?;
                }
                op::LONG_BINPUT => {
                    let idx = self.uint(4)? as u32;
                    self.memo_put(idx)?;
                }
                op::MEMOIZE => {
                    let idx = self.memo.len() as u32;
                    self.memo_put(idx)?;
                }
                op::GET => {
                    let idx = self.line()?.parse().map_err(|_| malformed("bad GET index"))?;
                    self.memo_get(idx)?;
                }
                op::BINGET => {
                    let idx = self.uint(1)? as u32;
                    self.memo_get(idx)?;
                }
                op::LONG_BINGET => {
                    let idx = self.uint(4)? as u32;
                    self.memo_get(idx)?;
                }
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(malformed("STACK_GLOBAL needs two strings")),
                    }
                }
                op::BINPERSID => {
                    let pid = self.pop()?;
                    let storage = persistent_storage(pid)?;
                    self.push(storage)?;
                }
                op::PERSID => {
                    let key = self.line()?;
                    return Err(malformed(format!("text persistent id {}", quote(key))));
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args)?;
                    self.push(v)?;
                }
                op::BUILD => {
                    let state = self.pop()?;
                    build(self.top()?, state)?;
                }
                // Class instantiation and the extension registry: never in a state dict.
                op::NEWOBJ | op::NEWOBJ_EX | op::INST | op::OBJ | op::EXT1 | op::EXT2 | op::EXT4 => {
                    return Err(PickleError::Forbidden(format!("object construction (opcode 0x{code:02x})")));
                }
                _ => return Err(malformed(format!("unknown opcode 0x{code:02x}"))),
            }
        }
    }
}

/// A text argument for an error message: quoted, and cut short when long.
fn quote(t: &str) -> String {
    match t.char_indices().nth(40) {
        Some((at, _)) => format!("{:?}...", &t[..at]),
        None => format!("{t:?}"),
    }
}

fn long_value(b: &[u8]) -> Value {
    if b.len() <= 8 {
        let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(b.into())
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
    match &items[..] {
        [Value::Str(tag), Value::Global(Global::DType(dtype)), Value::Str(key), _location, numel, rest @ ..]
            if &**tag == "storage" =>
        {
            if rest.iter().any(|v| *v != Value::None) {
                return Err(malformed("storage views (PyTorch < 0.4 shared storages) are not supported"));
            }
            Ok(Value::Storage(Rc::new(StorageRef {
                key: key.to_string(),
                dtype: *dtype,
                numel: Some(as_usize(numel, "storage size")?),
            })))
        }
        _ => Err(malformed("persistent id is not a storage")),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(g) = callable else {
        return Err(malformed(format!("REDUCE on a {}", callable.kind())));
    };
    let Value::Tuple(args) = args else { return Err(malformed("REDUCE arguments are not a tuple")) };
    match g {
        Global::OrderedDict => match args.last() {
            None => Value::dict(Vec::new()),
            Some(Value::List(items)) => {
                let mut d = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item {
                        Value::Tuple(kv) | Value::List(kv) if kv.len() == 2 => d.push((kv[0].clone(), kv[1].clone())),
                        _ => return Err(malformed("OrderedDict item is not a pair")),
                    }
                }
                Value::dict(d)
            }
            Some(other) => Err(malformed(format!("OrderedDict({})", other.kind()))),
        },
        Global::RebuildTensor => {
            if args.len() < 4 {
                return Err(malformed("_rebuild_tensor needs 4 arguments"));
            }
            let Value::Storage(storage) = &args[0] else {
                return Err(malformed("_rebuild_tensor: first argument is not a storage"));
            };
            let offset = as_usize(&args[1], "storage offset")?;
            let shape = usize_list(&args[2], "size")?;
            let stride = usize_list(&args[3], "stride")?;
            if shape.len() != stride.len() {
                return Err(malformed("size and stride differ in length"));
            }
            Ok(Value::Tensor(Rc::new(TensorRef { storage: (**storage).clone(), offset, shape, stride })))
        }
        Global::RebuildParameter => match args.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
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

    fn s(t: &str) -> Value {
        Value::Str(t.into())
    }

    #[test]
    fn reads_plain_containers() {
        // pickle.dumps({'a': [1, 2.5, None, True], 'b': ('x', -3)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03X\x01\x00\x00\x00xq\x04J\xfd\xff\xff\xff\x86q\x05u.";
        let (v, n) = unpickle(data).unwrap();
        assert_eq!(n, data.len());
        let list = Value::list(vec![Value::Int(1), Value::Float(2.5), Value::None, Value::Bool(true)]).unwrap();
        let tuple = Value::tuple(vec![s("x"), Value::Int(-3)]).unwrap();
        assert_eq!(v, Value::dict(vec![(s("a"), list), (s("b"), tuple)]).unwrap());
    }

    #[test]
    fn memo_entries_keep_the_value_they_stored() {
        // EMPTY_LIST, BINPUT 0, 1, APPEND, then BINGET 0 twice into a tuple:
        // the memo keeps the list as it was when stored (empty), the stack the appended one.
        let data = b"\x80\x02]q\x00K\x01ah\x00\x86.";
        let (v, _) = unpickle(data).unwrap();
        let empty = Value::list(vec![]).unwrap();
        let one = Value::list(vec![Value::Int(1)]).unwrap();
        assert_eq!(v, Value::tuple(vec![one, empty]).unwrap());
    }

    fn expect_malformed(data: &[u8], expected: &str) {
        match unpickle(data) {
            Err(PickleError::Malformed(why)) => assert!(why.contains(expected), "{why}"),
            other => panic!("expected {expected:?}, got {:?}", other.map(|(v, _)| v.kind())),
        }
    }

    #[test]
    fn a_memo_entry_doubled_48_times_is_refused_not_built() {
        // NONE, BINPUT 0, then 48 times: BINGET 0, BINGET 0, TUPLE2, BINPUT 0, POP.
        // Copying memo entries made this 2^48 values; shared, it is 48 small
        // tuples whose weight (2^48) is over the bound.
        let mut data = b"\x80\x02Nq\x00".to_vec();
        for _ in 0..48 {
            data.extend(b"h\x00h\x00\x86q\x000");
        }
        data.extend(b"h\x00.");
        expect_malformed(&data, "more than 16777216 items");
        // 20 doublings (a million items) are within the bound and read at once
        let mut data = b"\x80\x02Nq\x00".to_vec();
        for _ in 0..20 {
            data.extend(b"h\x00h\x00\x86q\x000");
        }
        data.extend(b"h\x00.");
        let (v, _) = unpickle(&data).unwrap();
        assert_eq!(v.depth(), 20);
        assert_eq!(v.weight(), (1 << 21) - 1);
    }

    #[test]
    fn deep_nesting_is_refused_before_it_overflows_the_stack() {
        // 5 million nested one-element tuples (TUPLE1)
        let mut data = b"\x80\x02N".to_vec();
        data.extend(std::iter::repeat_n(op::TUPLE1, 5_000_000));
        data.push(op::STOP);
        expect_malformed(&data, "nest more than 64 deep");
        // 2 million nested MARK ... LIST: the marks alone are too many
        let mut data = b"\x80\x02".to_vec();
        data.extend(std::iter::repeat_n(op::MARK, 2_000_000));
        data.extend(std::iter::repeat_n(op::LIST, 2_000_000));
        data.push(op::STOP);
        expect_malformed(&data, "values on the stack");
        // and 1000 of them nest too deep
        let mut data = b"\x80\x02".to_vec();
        data.extend(std::iter::repeat_n(op::MARK, 1000));
        data.extend(std::iter::repeat_n(op::LIST, 1000));
        data.push(op::STOP);
        expect_malformed(&data, "nest more than 64 deep");
        // 64 deep is allowed
        let mut data = b"\x80\x02N".to_vec();
        data.extend(std::iter::repeat_n(op::TUPLE1, 64));
        data.push(op::STOP);
        assert_eq!(unpickle(&data).unwrap().0.depth(), 64);
    }

    #[test]
    fn a_shared_list_changed_again_and_again_is_refused_not_copied_quadratically() {
        // EMPTY_LIST, then 200,000 times: BININT1 1, APPEND, MEMOIZE. Each
        // append copies the list the memo shares: 2*10^10 items, 600 GB, unbounded.
        let mut data = b"\x80\x04]".to_vec();
        for _ in 0..200_000 {
            data.extend([op::BININT1, 1, op::APPEND, op::MEMOIZE]);
        }
        data.push(op::STOP);
        let started = std::time::Instant::now();
        expect_malformed(&data, "builds more than 4194304 container items");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        // unshared, the same appends are linear and read
        let mut data = b"\x80\x04]".to_vec();
        for _ in 0..200_000 {
            data.extend([op::BININT1, 1, op::APPEND]);
        }
        data.push(op::STOP);
        match unpickle(&data).unwrap().0 {
            Value::List(l) => assert_eq!(l.len(), 200_000),
            other => panic!("{}", other.kind()),
        }
    }

    #[test]
    fn stack_and_memo_are_bounded() {
        let mut data = b"\x80\x02".to_vec();
        data.extend(std::iter::repeat_n(op::NONE, MAX_ENTRIES + 1));
        data.push(op::STOP);
        expect_malformed(&data, "values on the stack");
        let mut data = b"\x80\x02N".to_vec();
        data.extend(std::iter::repeat_n(op::MEMOIZE, MAX_ENTRIES + 1));
        data.push(op::STOP);
        expect_malformed(&data, "memo entries");
    }

    #[test]
    fn truncated_is_malformed_not_a_panic() {
        let data = b"\x80\x02}q\x00(X\x01\x00\x00";
        assert!(matches!(unpickle(data), Err(PickleError::Malformed(_))));
    }
}
