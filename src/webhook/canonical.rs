//! The canonical form of a delivery's body: exactly what JavaScript's
//! `JSON.stringify(JSON.parse(body))` gives, which is what env0's webhook guide signs in its
//! sample (the parsed and re-serialised body rather than the bytes on the wire).
//!
//! The body is walked here rather than through `serde_json`'s `Value`, whose maps sort their keys
//! and whose numbers print differently from JavaScript's. What JavaScript does, and this does:
//! - no white space between tokens;
//! - object keys in the order received, except that keys which are array indices (`"0"`,
//!   `"17"`, up to 2³² − 2, with no leading zero) come first, in ascending numeric order: that is
//!   the property order of a JavaScript object. A repeated key keeps its first place and its last
//!   value;
//! - every number is read as the nearest IEEE-754 double and printed the way `Number.prototype
//!   .toString` prints it: the shortest digits that read back as the same double, `1.0` as `1`,
//!   `-0` as `0`, no exponent from 10⁻⁶ up to 10²¹ (`1e-7`, `1e+21` outside), and a number too
//!   large for a double (`1e400`) as `null`;
//! - strings escape only `"`, `\`, and the control characters below U+0020 (`\b`, `\f`, `\n`,
//!   `\r`, `\t`, others as `\u00xx` in lowercase); `/` and every other character, non-ASCII
//!   included, are written as they are. A lone UTF-16 surrogate from a `\ud800`-style escape is
//!   written back as a lowercase escape (ES2019's well-formed `JSON.stringify`);
//! - bytes that are not UTF-8 are read as U+FFFD, as Node's body parsers decode them.
//!
//! A body that is not JSON has no canonical form (`None`), nor has one nested deeper than
//! [`MAX_DEPTH`] (a bound on recursion; env0's events are a few levels deep).

use std::collections::HashMap;
use std::fmt::Write as _;

/// Nesting read at most.
pub(crate) const MAX_DEPTH: usize = 128;

/// `JSON.stringify(JSON.parse(body))`, or `None` when `body` is not JSON (or nests too deep).
pub(crate) fn canonical(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let mut reader = Reader { text: &text, at: 0 };
    let mut out = String::with_capacity(text.len());
    reader.value(&mut out, 0)?;
    reader.skip_space();
    (reader.at == reader.text.len()).then_some(out)
}

/// A position in the body's text.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// JSON's white space: space, tab, line feed, carriage return (nothing else).
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// Reads one value and writes its canonical form to `out`.
    fn value(&mut self, out: &mut String, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(out, depth),
            b'[' => self.array(out, depth),
            b'"' => {
                let units = self.string()?;
                write_string(out, &units);
                Some(())
            }
            b't' => self.literal("true").map(|()| out.push_str("true")),
            b'f' => self.literal("false").map(|()| out.push_str("false")),
            b'n' => self.literal("null").map(|()| out.push_str("null")),
            _ => self.number(out),
        }
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Option<()> {
        self.at += 1;
        out.push('[');
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            out.push(']');
            return Some(());
        }
        loop {
            self.value(out, depth + 1)?;
            self.skip_space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    out.push(',');
                }
                b']' => {
                    self.at += 1;
                    out.push(']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Option<()> {
        self.at += 1;
        // (key as UTF-16, canonical value), in JavaScript's property order once sorted below.
        let mut members: Vec<(Vec<u16>, String)> = Vec::new();
        // Where each key is in `members`, so a body of many keys costs no quadratic search.
        let mut places: HashMap<Vec<u16>, usize> = HashMap::new();
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                self.skip_space();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.eat(b':')?;
                let mut value = String::new();
                self.value(&mut value, depth + 1)?;
                if let Some(&place) = places.get(&key) {
                    members[place].1 = value;
                } else {
                    places.insert(key.clone(), members.len());
                    members.push((key, value));
                }
                self.skip_space();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        // Array indices first, ascending; the other keys keep their order (a stable sort).
        members.sort_by_key(|(key, _)| array_index(key).map_or((1, 0), |i| (0, i)));
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, key);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        Some(())
    }

    /// Reads a string (at its opening quote) as UTF-16 code units, the way JavaScript holds it.
    fn string(&mut self) -> Option<Vec<u16>> {
        self.at += 1;
        let mut units = Vec::new();
        loop {
            let c = self.text.get(self.at..)?.chars().next()?;
            self.at += c.len_utf8();
            match c {
                '"' => return Some(units),
                '\\' => {
                    let escaped = self.peek()?;
                    self.at += 1;
                    let unit = match escaped {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => {
                            let hex = self.text.get(self.at..self.at + 4)?;
                            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.at += 4;
                            u16::from_str_radix(hex, 16).ok()?
                        }
                        _ => return None,
                    };
                    units.push(unit);
                }
                c if u32::from(c) < 0x20 => return None,
                c => {
                    let mut buf = [0u16; 2];
                    units.extend_from_slice(c.encode_utf16(&mut buf));
                }
            }
        }
    }

    /// Reads a number (JSON's grammar, strictly) and writes it as JavaScript prints it.
    fn number(&mut self, out: &mut String) -> Option<()> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits_required()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits_required()?;
        }
        let text = self.text.get(start..self.at)?;
        // Rust reads decimal text to the nearest double, as JavaScript does.
        let value: f64 = text.parse().ok()?;
        write_number(out, value);
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn digits_required(&mut self) -> Option<()> {
        let before = self.at;
        self.digits();
        (self.at > before).then_some(())
    }
}

/// The key's value when it is an array index: the canonical decimal text of an integer from 0
/// to 2³² − 2.
fn array_index(key: &[u16]) -> Option<u32> {
    let first = *key.first()?;
    if key.len() > 10 || (first == u16::from(b'0') && key.len() > 1) {
        return None;
    }
    let mut value: u64 = 0;
    for &unit in key {
        let digit = u8::try_from(unit).ok().filter(u8::is_ascii_digit)? - b'0';
        value = value * 10 + u64::from(digit);
    }
    u32::try_from(value).ok().filter(|v| *v != u32::MAX)
}

/// A string as `JSON.stringify` writes it (see the module documentation).
fn write_string(out: &mut String, units: &[u16]) {
    out.push('"');
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok('"') => out.push_str("\\\""),
            Ok('\\') => out.push_str("\\\\"),
            Ok('\u{8}') => out.push_str("\\b"),
            Ok('\u{c}') => out.push_str("\\f"),
            Ok('\n') => out.push_str("\\n"),
            Ok('\r') => out.push_str("\\r"),
            Ok('\t') => out.push_str("\\t"),
            Ok(c) if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            Ok(c) => out.push(c),
            Err(lone) => {
                let _ = write!(out, "\\u{:04x}", lone.unpaired_surrogate());
            }
        }
    }
    out.push('"');
}

/// A number as JavaScript's `Number.prototype.toString` writes it (ECMA-262, `Number::toString`
/// with radix 10), and `null` for the infinities, as `JSON.stringify` writes them.
fn write_number(out: &mut String, value: f64) {
    if !value.is_finite() {
        out.push_str("null");
        return;
    }
    if value == 0.0 {
        out.push('0');
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    // Rust's shortest round-trip digits, in scientific form: `d[.ddd]e[-]x`.
    let scientific = format!("{:e}", value.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        out.push_str(&scientific);
        return;
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let Ok(exponent) = exponent.parse::<i32>() else {
        out.push_str(&scientific);
        return;
    };
    // ECMA-262's k (number of digits) and n (place of the decimal point).
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(n - k).unwrap_or(0),
        ));
    } else if 0 < n && n <= 21 {
        let (whole, fraction) = digits.split_at(usize::try_from(n).unwrap_or(0));
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', usize::try_from(-n).unwrap_or(0)));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{}",
            if n > 0 { '+' } else { '-' },
            (n - 1).unsigned_abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    /// Every expectation below is what `JSON.stringify(JSON.parse(input))` prints in a
    /// JavaScript engine, written out by hand.
    fn check(cases: &[(&str, &str)]) {
        for (input, want) in cases {
            assert_eq!(
                canonical(input.as_bytes()).as_deref(),
                Some(*want),
                "{input}"
            );
        }
    }

    #[test]
    fn white_space_between_tokens_goes_and_white_space_in_strings_stays() {
        check(&[
            (
                "{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } ,\r\n \"c\" : [ ] }",
                r#"{"a":[1,2],"b":{},"c":[]}"#,
            ),
            ("  \"a b\\tc\"  ", r#""a b\tc""#),
            ("[true, false, null]", "[true,false,null]"),
            (
                "{\n  \"type\": \"com.env0.deploy.succeeded\",\n  \"data\": {\"x\": 1}\n}",
                r#"{"type":"com.env0.deploy.succeeded","data":{"x":1}}"#,
            ),
        ]);
    }

    #[test]
    fn keys_keep_the_order_received_but_array_indices_come_first_in_numeric_order() {
        check(&[
            (r#"{"b":1,"a":2,"c":3}"#, r#"{"b":1,"a":2,"c":3}"#),
            (
                r#"{"b":1,"2":2,"1":3,"a":4}"#,
                r#"{"1":3,"2":2,"b":1,"a":4}"#,
            ),
            (r#"{"10":1,"9":2}"#, r#"{"9":2,"10":1}"#),
            // Not array indices: a leading zero, a sign, 2^32 - 1.
            (r#"{"01":1,"1":2}"#, r#"{"1":2,"01":1}"#),
            (r#"{"-1":1,"1":2}"#, r#"{"1":2,"-1":1}"#),
            (
                r#"{"4294967295":1,"4294967294":2}"#,
                r#"{"4294967294":2,"4294967295":1}"#,
            ),
        ]);
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
        check(&[(r#"{"a":1,"b":2,"a":3}"#, r#"{"a":3,"b":2}"#)]);
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        check(&[
            ("1.0", "1"),
            ("1.50", "1.5"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("100", "100"),
            ("1E2", "100"),
            ("0.1", "0.1"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("123e-2", "1.23"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1.25e-7", "1.25e-7"),
            ("123e18", "123000000000000000000"),
            ("1e21", "1e+21"),
            ("1E21", "1e+21"),
            ("1.5e300", "1.5e+300"),
            ("-2.5e-10", "-2.5e-10"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            // Past 2^53 the nearest double is printed.
            ("9007199254740993", "9007199254740992"),
            ("12345678901234567890", "12345678901234567000"),
            // Beyond a double: Infinity, which JSON.stringify writes as null.
            ("1e400", "null"),
            ("-1e400", "null"),
            ("[1.0,2.10,-3e0]", "[1,2.1,-3]"),
        ]);
    }

    #[test]
    fn strings_escape_only_quote_backslash_and_control_characters() {
        check(&[
            (r#""a\/b""#, r#""a/b""#),
            (r#""\u00e9""#, "\"é\""),
            ("\"é ü 日本\"", "\"é ü 日本\""),
            (r#""\u2028\u2029""#, "\"\u{2028}\u{2029}\""),
            (r#""\u0008\u000C\u000a\u000D\u0009""#, r#""\b\f\n\r\t""#),
            (r#""\u001F\u0000""#, r#""\u001f\u0000""#),
            (r#""\u007f""#, "\"\u{7f}\""),
            (r#""\"\\""#, r#""\"\\""#),
            (r#""\ud83d\ude00""#, "\"😀\""),
            (r#""\uD83D\uDE00""#, "\"😀\""),
            // Lone surrogates come back as lowercase escapes.
            (r#""\ud800""#, r#""\ud800""#),
            (r#""\uDC00x""#, r#""\udc00x""#),
            (r#"{"\u0041":1}"#, r#"{"A":1}"#),
        ]);
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_the_replacement_character() {
        assert_eq!(canonical(b"\"a\xffb\"").as_deref(), Some("\"a\u{fffd}b\""));
    }

    #[test]
    fn what_json_parse_refuses_has_no_canonical_form() {
        for bad in [
            "",
            " ",
            "{",
            r#"{"a":1,}"#,
            "[1,]",
            "[1 2]",
            r#"{"a" 1}"#,
            "{a:1}",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "-",
            "NaN",
            "Infinity",
            "tru",
            "{} x",
            "\"a\u{1}b\"",
            r#""\x41""#,
            r#""\u12g4""#,
            "\"open",
            "'single'",
            "\u{a0}1",
        ] {
            assert_eq!(canonical(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_read_up_to_the_bound_and_refused_past_it() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let at_bound = nested(super::MAX_DEPTH + 1);
        assert_eq!(canonical(at_bound.as_bytes()), Some(at_bound.clone()));
        assert_eq!(canonical(nested(super::MAX_DEPTH + 2).as_bytes()), None);
        assert_eq!(canonical(nested(100_000).as_bytes()), None);
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::canonical;

        /// JSON values without floats (whose `1.0` JavaScript prints as `1`), integers past 2^53
        /// and keys that are array indices (which JavaScript orders first): for these,
        /// `serde_json`'s compact form with its sorted keys is the canonical form of its pretty
        /// one.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                // Integers a double holds exactly (beyond 2^53 JavaScript rounds them).
                (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        "[a-zA-Z_\"\\\\/\\x00-\\x1f\\u{e9}\\u{2028}\\u{1f600}]{0,6}",
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn the_canonical_form_of_a_pretty_body_is_its_compact_form_and_a_fixed_point(v in value()) {
                let pretty = serde_json::to_string_pretty(&v).unwrap();
                let compact = serde_json::to_string(&v).unwrap();
                let c = canonical(pretty.as_bytes());
                prop_assert_eq!(c.as_deref(), Some(compact.as_str()));
                let again = canonical(compact.as_bytes());
                prop_assert_eq!(again.as_deref(), Some(compact.as_str()));
            }

            #[test]
            fn any_bytes_are_read_without_panic_and_a_canonical_form_is_a_fixed_point(
                bytes in prop::collection::vec(any::<u8>(), 0..64)
            ) {
                if let Some(c) = canonical(&bytes) {
                    let again = canonical(c.as_bytes());
                    prop_assert_eq!(again.as_deref(), Some(c.as_str()));
                }
            }
        }
    }
}
