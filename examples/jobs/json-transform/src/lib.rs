//! Cairn example job: rewrites a JSON object with its keys sorted and its strings
//! reversed.
//!
//! Input: a JSON object (RFC 8259), at most 64 levels deep. Output: the same object,
//! compact (no whitespace), where every object's members are sorted by key (byte order of
//! the UTF-8 key; members with equal keys keep their order) and every string *value* is
//! reversed by Unicode scalar value. Keys are not reversed; numbers are copied as written.
//! Invalid JSON, or a top level that is not an object, aborts the job (status Trap).
//!
//! A small hand-written parser: the job needs no dependency but the SDK.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Deepest nesting accepted: the parser recurses once per level.
const DEPTH_MAX: usize = 64;

enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, validated.
    Number(&'a str),
    String(String),
    Array(Vec<Value<'a>>),
    Object(Vec<(String, Value<'a>)>),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

type Parse<T> = Result<T, &'static str>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Parse<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err("unexpected character")
        }
    }

    fn literal(&mut self, word: &str) -> Parse<()> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err("invalid literal")
        }
    }

    fn value(&mut self, depth: usize) -> Parse<Value<'a>> {
        if depth > DEPTH_MAX {
            return Err("nested too deeply");
        }
        self.skip_whitespace();
        let value = match self.peek().ok_or("unexpected end of input")? {
            b'n' => self.literal("null").map(|()| Value::Null)?,
            b't' => self.literal("true").map(|()| Value::Bool(true))?,
            b'f' => self.literal("false").map(|()| Value::Bool(false))?,
            b'"' => Value::String(self.string()?),
            b'[' => Value::Array(self.array(depth)?),
            b'{' => Value::Object(self.object(depth)?),
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            _ => return Err("unexpected character"),
        };
        self.skip_whitespace();
        Ok(value)
    }

    fn array(&mut self, depth: usize) -> Parse<Vec<Value<'a>>> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err("expected ',' or ']'"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Parse<Vec<(String, Value<'a>)>> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            self.skip_whitespace();
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            members.push((key, self.value(depth + 1)?));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(members);
                }
                _ => return Err("expected ',' or '}'"),
            }
        }
    }

    fn number(&mut self) -> Parse<&'a str> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err("invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err("invalid number");
            }
        }
        Ok(&self.text[start..self.pos])
    }

    fn hex4(&mut self) -> Parse<u32> {
        let hex = self.text.get(self.pos..self.pos + 4).ok_or("invalid escape")?;
        let code = u32::from_str_radix(hex, 16).map_err(|_| "invalid escape")?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("invalid escape");
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Parse<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let c = rest.chars().next().ok_or("unterminated string")?;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let escape = self.peek().ok_or("unterminated string")?;
                    self.pos += 1;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err("invalid escape"),
                    });
                }
                '\0'..='\u{1f}' => return Err("control character in string"),
                c => out.push(c),
            }
        }
    }

    /// After `\u`: one code point, from a surrogate pair if need be.
    fn unicode_escape(&mut self) -> Parse<char> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                self.literal("\\u").map_err(|_| "unpaired surrogate")?;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err("unpaired surrogate");
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err("unpaired surrogate"),
            code => code,
        };
        char::from_u32(code).ok_or("invalid escape")
    }
}

/// Sorts every object's keys and reverses every string value, recursively.
fn transform(value: &mut Value<'_>) {
    match value {
        Value::String(s) => *s = s.chars().rev().collect(),
        Value::Array(items) => items.iter_mut().for_each(transform),
        Value::Object(members) => {
            members.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
            members.iter_mut().for_each(|(_, v)| transform(v));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\0'..='\u{1f}' => {
                let code = c as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(out: &mut String, value: &Value<'_>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(text) => out.push_str(text),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
    }
}

fn transform_json(input: &[u8]) -> Parse<String> {
    let text = core::str::from_utf8(input).map_err(|_| "input is not UTF-8")?;
    let mut parser = Parser { text, pos: 0 };
    let mut value = parser.value(0)?;
    if parser.pos != text.len() {
        return Err("trailing characters after the JSON value");
    }
    if !matches!(value, Value::Object(_)) {
        return Err("the input must be a JSON object");
    }
    transform(&mut value);
    let mut out = String::with_capacity(input.len());
    write(&mut out, &value);
    Ok(out)
}

fn json_transform(input: &[u8]) -> String {
    transform_json(input).unwrap_or_else(|reason| cairn_sdk::abort(reason))
}

cairn_sdk::job!(json_transform);

#[cfg(test)]
mod tests {
    use super::transform_json;

    #[test]
    fn sorts_keys_and_reverses_strings() {
        let input = r#" { "b": "hello", "a": [1, "xy", {"d": true, "c": null}], "num": -1.5e3 } "#;
        assert_eq!(
            transform_json(input.as_bytes()).as_deref(),
            Ok(r#"{"a":[1,"yx",{"c":null,"d":true}],"b":"olleh","num":-1.5e3}"#)
        );
    }

    #[test]
    fn handles_escapes_and_unicode() {
        let input = r#"{"k\"ey": "a\n\u00e9\ud83d\ude00", "e": ""}"#;
        assert_eq!(transform_json(input.as_bytes()).as_deref(), Ok("{\"e\":\"\",\"k\\\"ey\":\"\u{1f600}é\\na\"}"));
    }

    #[test]
    fn rejects_invalid_input() {
        for bad in ["", "[1]", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{} x", "{\"a\":\"\\ud800\"}"] {
            assert!(transform_json(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        let deep = format!("{{\"a\":{deep}}}");
        assert_eq!(transform_json(deep.as_bytes()), Err("nested too deeply"));
    }
}
