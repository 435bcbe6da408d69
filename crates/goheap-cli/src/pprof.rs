//! A reader of pprof profiles (gzipped `profile.proto`): what `goheap leaks` compares, and,
//! included by path, the decoder the heap-profile tests check goheap's writer with. It
//! shares no code with the writer (`goheap::profile`): the protobuf wire format is decoded
//! from scratch here, and inflation is miniz_oxide's.
//!
//! Only what heap profiles use is kept: sample types, samples (location ids, values,
//! labels), locations (their functions, innermost inlined first), function names, the
//! period and comments.

#![allow(dead_code)] // the tests use parts the CLI does not, and the reverse

use std::collections::HashMap;

/// A sample label value.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelValue {
    Str(String),
    Num(i64),
}

/// One sample.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Location ids, innermost frame first.
    pub locations: Vec<u64>,
    pub values: Vec<i64>,
    pub labels: Vec<(String, LabelValue)>,
}

/// A decoded profile.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// (type, unit) of each value, e.g. ("inuse_space", "bytes").
    pub sample_types: Vec<(String, String)>,
    pub samples: Vec<Sample>,
    /// Function ids of each location, innermost first.
    pub locations: HashMap<u64, Vec<u64>>,
    pub functions: HashMap<u64, String>,
    pub period: i64,
    pub comments: Vec<String>,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.b.is_empty()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&c, rest) = self.b.split_first().ok_or("truncated varint")?;
            self.b = rest;
            v |= u64::from(c & 0x7f) << (7 * i);
            if c < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        if n > self.b.len() {
            return Err("truncated field".into());
        }
        let (f, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(f)
    }

    /// The next field: its number and value.
    fn field(&mut self) -> Result<(u64, Value<'a>), String> {
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Value::Int(self.varint()?),
            1 => Value::Int(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => Value::Bytes(self.bytes()?),
            5 => Value::Int(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap(),
            ))),
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok((key >> 3, v))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.b.len() {
            return Err("truncated fixed field".into());
        }
        let (f, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(f)
    }
}

enum Value<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    fn int(&self) -> Result<u64, String> {
        match self {
            Value::Int(v) => Ok(*v),
            Value::Bytes(_) => Err("expected a varint".into()),
        }
    }

    /// A repeated varint field, packed or not.
    fn ints(&self, out: &mut Vec<u64>) -> Result<(), String> {
        match self {
            Value::Int(v) => out.push(*v),
            Value::Bytes(b) => {
                let mut r = Reader { b };
                while !r.done() {
                    out.push(r.varint()?);
                }
            }
        }
        Ok(())
    }

    fn msg(&self) -> Result<Reader<'a>, String> {
        match *self {
            Value::Bytes(b) => Ok(Reader { b }),
            Value::Int(_) => Err("expected a message".into()),
        }
    }
}

/// Inflates a gzip member (or returns `data` as it is if it is not gzipped, as pprof does).
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Ok(data.to_vec());
    }
    if data[2] != 8 {
        return Err("gzip: not deflate".into());
    }
    let flags = data[3];
    let mut at = 10;
    if flags & 4 != 0 {
        let n = u16::from_le_bytes([data[at], data[at + 1]]) as usize;
        at += 2 + n;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            at += data[at..]
                .iter()
                .position(|&c| c == 0)
                .ok_or("gzip: bad header")?
                + 1;
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    let body = data.get(at..data.len() - 8).ok_or("gzip: truncated")?;
    let out = miniz_oxide::inflate::decompress_to_vec(body)
        .map_err(|e| format!("gzip: bad deflate stream: {e:?}"))?;
    let size = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
    if out.len() as u32 != size {
        return Err("gzip: wrong length".into());
    }
    Ok(out)
}

impl Profile {
    /// Decodes a profile file's bytes (gzipped or not).
    pub fn parse(file: &[u8]) -> Result<Profile, String> {
        let raw = gunzip(file)?;
        let mut r = Reader { b: &raw };
        let mut strings = Vec::new();
        let mut p = Profile::default();
        // Messages that name strings are decoded once the string table is known.
        let mut types = Vec::new();
        let mut samples = Vec::new();
        let mut functions = Vec::new();
        let mut comments = Vec::new();
        while !r.done() {
            let (f, v) = r.field()?;
            match f {
                1 => types.push(v.msg()?.b),
                2 => samples.push(v.msg()?.b),
                4 => {
                    let mut m = v.msg()?;
                    let (mut id, mut funcs) = (0, Vec::new());
                    while !m.done() {
                        match m.field()? {
                            (1, x) => id = x.int()?,
                            (4, line) => {
                                let mut l = line.msg()?;
                                while !l.done() {
                                    if let (1, x) = l.field()? {
                                        funcs.push(x.int()?);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    p.locations.insert(id, funcs);
                }
                5 => functions.push(v.msg()?.b),
                6 => match v {
                    Value::Bytes(b) => strings.push(String::from_utf8_lossy(b).into_owned()),
                    Value::Int(_) => return Err("string table entry is not bytes".into()),
                },
                12 => p.period = v.int()? as i64,
                13 => comments.push(v.int()?),
                _ => {}
            }
        }
        let s = |i: u64| -> Result<String, String> {
            strings
                .get(i as usize)
                .cloned()
                .ok_or_else(|| format!("string index {i} out of range"))
        };
        for b in types {
            let mut m = Reader { b };
            let (mut ty, mut unit) = (0, 0);
            while !m.done() {
                match m.field()? {
                    (1, x) => ty = x.int()?,
                    (2, x) => unit = x.int()?,
                    _ => {}
                }
            }
            p.sample_types.push((s(ty)?, s(unit)?));
        }
        for b in functions {
            let mut m = Reader { b };
            let (mut id, mut name) = (0, 0);
            while !m.done() {
                match m.field()? {
                    (1, x) => id = x.int()?,
                    (2, x) => name = x.int()?,
                    _ => {}
                }
            }
            p.functions.insert(id, s(name)?);
        }
        for b in samples {
            let mut m = Reader { b };
            let mut sample = Sample::default();
            let mut values = Vec::new();
            while !m.done() {
                match m.field()? {
                    (1, x) => x.ints(&mut sample.locations)?,
                    (2, x) => x.ints(&mut values)?,
                    (3, x) => {
                        let mut l = x.msg()?;
                        let (mut key, mut str_, mut num) = (0, 0, None);
                        while !l.done() {
                            match l.field()? {
                                (1, y) => key = y.int()?,
                                (2, y) => str_ = y.int()?,
                                (3, y) => num = Some(y.int()? as i64),
                                _ => {}
                            }
                        }
                        let value = match num {
                            Some(n) if str_ == 0 => LabelValue::Num(n),
                            _ => LabelValue::Str(s(str_)?),
                        };
                        sample.labels.push((s(key)?, value));
                    }
                    _ => {}
                }
            }
            sample.values = values.into_iter().map(|v| v as i64).collect();
            if sample.values.len() != p.sample_types.len() {
                return Err("a sample's value count differs from the sample types'".into());
            }
            p.samples.push(sample);
        }
        for c in comments {
            p.comments.push(s(c)?);
        }
        for (id, funcs) in &p.locations {
            if let Some(f) = funcs.iter().find(|f| !p.functions.contains_key(f)) {
                return Err(format!("location {id} names unknown function {f}"));
            }
        }
        for sample in &p.samples {
            if let Some(l) = sample
                .locations
                .iter()
                .find(|l| !p.locations.contains_key(l))
            {
                return Err(format!("a sample names unknown location {l}"));
            }
        }
        Ok(p)
    }

    /// The index of the sample type named `ty`.
    pub fn value_index(&self, ty: &str) -> Option<usize> {
        self.sample_types.iter().position(|(t, _)| t == ty)
    }

    /// The function names of a sample's stack, innermost first.
    pub fn stack(&self, s: &Sample) -> Vec<&str> {
        s.locations
            .iter()
            .flat_map(|l| self.locations[l].iter())
            .map(|f| self.functions[f].as_str())
            .collect()
    }

    /// The total of value `idx` over all samples.
    pub fn total(&self, idx: usize) -> i64 {
        self.samples.iter().map(|s| s.values[idx]).sum()
    }

    /// Value `idx` summed over the samples whose stack contains a function for which
    /// `pred` holds (pprof's "cum" of those functions, each sample counted once).
    pub fn cum(&self, idx: usize, pred: impl Fn(&str) -> bool) -> i64 {
        self.samples
            .iter()
            .filter(|s| self.stack(s).into_iter().any(&pred))
            .map(|s| s.values[idx])
            .sum()
    }
}
