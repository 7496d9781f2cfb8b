//! The header's Python dict literal and its `descr`, parsed.

use super::Dtype;

/// The header dict's three entries.
pub(super) struct Dict {
    pub(super) descr: String,
    pub(super) fortran_order: bool,
    pub(super) shape: Vec<usize>,
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` (keys in any order,
/// either quote, trailing commas, Python 2's `3L`), then only whitespace.
pub(super) fn parse_dict(text: &str) -> std::result::Result<Dict, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !matches!(key.as_str(), "descr" | "fortran_order" | "shape") {
            return Err(format!("unknown key `{key}`"));
        }
        p.expect(b':')?;
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            _ => return Err(format!("`{key}` has a value of the wrong kind")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err("text after the closing brace".into());
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Dict {
            descr,
            fortran_order,
            shape,
        }),
        (None, ..) => Err("no `descr`".into()),
        (_, None, _) => Err("no `fortran_order`".into()),
        (.., None) => Err("no `shape`".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.pos) == Some(&c);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.pos))
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> std::result::Result<String, String> {
        self.skip_ws();
        let quote = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.pos)),
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\')
            .ok_or("unterminated string")?;
        if self.s[start + len] == b'\\' {
            return Err("escapes in strings are not supported".into());
        }
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            Ok(Value::Bool(true))
        } else if rest.starts_with(b"False") {
            self.pos += 5;
            Ok(Value::Bool(false))
        } else if rest.starts_with(b"(") {
            self.pos += 1;
            let mut dims = Vec::new();
            loop {
                if self.eat(b')') {
                    break;
                }
                dims.push(self.integer()?);
                if !self.eat(b',') {
                    self.expect(b')')?;
                    break;
                }
            }
            Ok(Value::Tuple(dims))
        } else if rest.starts_with(b"[") || rest.starts_with(b"{") {
            Err(
                "a structured dtype (a list of named fields) is not supported: save a plain \
                 float array, e.g. numpy.save(path, a.astype(numpy.float32))"
                    .into(),
            )
        } else {
            self.string().map(Value::Str)
        }
    }

    /// A non-negative integer (optionally Python 2's `L` suffix), checked for overflow.
    fn integer(&mut self) -> std::result::Result<usize, String> {
        self.skip_ws();
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(&c @ b'0'..=b'9') = self.s.get(self.pos) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .ok_or("a dimension overflows")?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected a dimension at byte {}", self.pos));
        }
        if self.s.get(self.pos) == Some(&b'L') {
            self.pos += 1;
        }
        Ok(n)
    }
}

/// The element type and byte order of a `descr`, or a message saying what it is and how
/// to convert it.
pub(super) fn parse_descr(descr: &str) -> std::result::Result<(Dtype, bool), String> {
    let (order, code) = match descr.as_bytes().first() {
        Some(&c @ (b'<' | b'>' | b'=' | b'|')) => (c, &descr[1..]),
        _ => (b'=', descr),
    };
    let big_endian = match order {
        b'>' => true,
        b'<' => false,
        _ => cfg!(target_endian = "big"),
    };
    match code {
        "f4" => Ok((Dtype::F32, big_endian)),
        "f8" => Ok((Dtype::F64, big_endian)),
        _ => {
            let kind = match code.as_bytes().first() {
                Some(b'b') if code == "b1" => "booleans",
                Some(b'i') => "signed integers",
                Some(b'u') => "unsigned integers",
                Some(b'f') if code == "f2" => "16-bit floats",
                Some(b'f') => "extended-precision floats",
                Some(b'c') => "complex numbers",
                Some(b'O') => "Python objects",
                Some(b'U' | b'S' | b'a') => "strings",
                Some(b'M' | b'm') => "dates or time spans",
                _ => "values of an unknown type",
            };
            Err(format!(
                "dtype '{descr}' ({kind}) is not supported: this crate reads float32 ('<f4') and \
                 float64 ('<f8') arrays; convert in NumPy with \
                 numpy.save(path, a.astype(numpy.float32))"
            ))
        }
    }
}
