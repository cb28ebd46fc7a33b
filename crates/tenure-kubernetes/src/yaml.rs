//! The subset of YAML that kubeconfigs are written in, read into a
//! [`serde_json::Value`]: block mappings, block sequences (`- name: x`),
//! plain, single- and double-quoted scalars, comments, empty `{}` and `[]`,
//! and JSON documents. Scalars stay strings; readers compare `"true"`.
//!
//! Anything else — block scalars (`|`, `>`), anchors, aliases, tags,
//! multi-line scalars, tabs in indentation — is an error naming its line,
//! never a guess.

use serde_json::{Map, Value};

/// A line without its comment: where its text starts, and the text.
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

/// Parses `source`; the error says what is wrong on which line.
pub(crate) fn parse(source: &str) -> Result<Value, String> {
    if source.trim_start().starts_with(['{', '[']) {
        return serde_json::from_str(source).map_err(|e| format!("invalid JSON: {e}"));
    }
    let mut lines = Vec::new();
    for (i, raw) in source.lines().enumerate() {
        let number = i + 1;
        let text = strip_comment(raw).trim_end();
        let content = text.trim_start_matches(' ');
        if content.is_empty() || (lines.is_empty() && content == "---") {
            continue;
        }
        if content.starts_with('\t') {
            return Err(format!(
                "line {number}: tabs are not allowed in indentation"
            ));
        }
        if matches!(content, "---" | "...") {
            return Err(format!(
                "line {number}: only one YAML document is supported"
            ));
        }
        let indent = text.len() - content.len();
        lines.push(Line {
            number,
            indent,
            text: content.to_owned(),
        });
    }
    let mut parser = Parser { lines, pos: 0 };
    let Some(first) = parser.lines.first() else {
        return Ok(Value::Null);
    };
    let value = parser.block(first.indent)?;
    match parser.lines.get(parser.pos) {
        Some(line) => Err(format!("line {}: unexpected indentation", line.number)),
        None => Ok(value),
    }
}

/// `line` up to a `#` that starts a comment: at the start or after a space,
/// outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\\' if double && !escaped => {
                escaped = true;
                previous = c;
                continue;
            }
            '"' if !single && !escaped => double = !double,
            '\'' if !double => single = !single,
            '#' if !single && !double && (previous == ' ' || previous == '\t') => {
                return &line[..i]
            }
            _ => {}
        }
        escaped = false;
        previous = c;
    }
    line
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
}

impl Parser {
    /// The node whose lines start at column `indent`, from the current line.
    fn block(&mut self, indent: usize) -> Result<Value, String> {
        if is_item(&self.lines[self.pos].text) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get_mut(self.pos) {
            if line.indent != indent || !is_item(&line.text) {
                break;
            }
            let rest = line.text[1..].trim_start_matches(' ').to_owned();
            if rest.is_empty() {
                self.pos += 1;
                items.push(self.nested(indent, false)?);
            } else if split_key(&rest).is_some() {
                // `- key: value`: a mapping whose keys line up after the dash.
                line.indent += line.text.len() - rest.len();
                line.text = rest;
                let column = line.indent;
                items.push(self.mapping(column)?);
            } else {
                let number = line.number;
                self.pos += 1;
                items.push(scalar(&rest, number)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent != indent || is_item(&line.text) {
                break;
            }
            let number = line.number;
            let (key, rest) = split_key(&line.text)
                .ok_or_else(|| format!("line {number}: expected `key: value`"))?;
            self.pos += 1;
            let value = if rest.is_empty() {
                self.nested(indent, true)?
            } else {
                scalar(&rest, number)?
            };
            if map.insert(key.clone(), value).is_some() {
                return Err(format!("line {number}: key {key:?} appears twice"));
            }
        }
        Ok(Value::Object(map))
    }

    /// The value of a key or dash that ended its line: the more indented
    /// lines that follow (for a key, also a sequence at its own column), or
    /// null.
    fn nested(&mut self, indent: usize, key: bool) -> Result<Value, String> {
        match self.lines.get(self.pos) {
            Some(next) if next.indent > indent => self.block(next.indent),
            Some(next) if key && next.indent == indent && is_item(&next.text) => {
                self.sequence(indent)
            }
            _ => Ok(Value::Null),
        }
    }
}

/// `key: rest` → the key (unquoted) and the rest, trimmed.
fn split_key(text: &str) -> Option<(String, String)> {
    let (key, rest) = if text.starts_with(['"', '\'']) {
        let quote = text.chars().next()?;
        let end = text[1..].find(quote)? + 1;
        let rest = text[end + 1..].strip_prefix(':')?;
        (scalar(&text[..=end], 0).ok()?.as_str()?.to_owned(), rest)
    } else {
        let end = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..end].trim_end().to_owned(), &text[end + 1..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((key, rest.trim().to_owned()))
}

/// A scalar on one line.
fn scalar(text: &str, number: usize) -> Result<Value, String> {
    let unsupported = |what: &str| Err(format!("line {number}: {what} are not supported"));
    match text.chars().next() {
        Some('"') => {
            if text.len() < 2 || !text.ends_with('"') {
                return unsupported("multi-line quoted strings");
            }
            // YAML's double-quoted escapes are JSON's, plus a few rare ones.
            serde_json::from_str(text)
                .map_err(|_| format!("line {number}: unsupported escape in {text}"))
        }
        Some('\'') => {
            if text.len() < 2 || !text.ends_with('\'') {
                return unsupported("multi-line quoted strings");
            }
            Ok(Value::String(text[1..text.len() - 1].replace("''", "'")))
        }
        Some('{') if text == "{}" => Ok(Value::Object(Map::new())),
        Some('[') if text == "[]" => Ok(Value::Array(Vec::new())),
        Some('{' | '[') => unsupported("non-empty flow collections in YAML"),
        Some('|' | '>') => unsupported("block scalars (| and >)"),
        Some('&' | '*' | '!') => unsupported("anchors, aliases and tags"),
        _ if matches!(text, "null" | "~") => Ok(Value::Null),
        _ => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_mappings_sequences_scalars_and_comments() {
        let doc = "\
# a comment
apiVersion: v1
clusters:
- cluster:
    server: https://10.0.0.1:6443  # trailing comment
    certificate-authority: \"/etc/ca#1.crt\"
  name: 'it''s'
- name: empty
  cluster: {}
nested:
  list:
    - a
    -   b
  'quoted key': x#y
preferences: {}
none:
";
        assert_eq!(
            parse(doc).unwrap(),
            json!({
                "apiVersion": "v1",
                "clusters": [
                    {"cluster": {"server": "https://10.0.0.1:6443",
                                 "certificate-authority": "/etc/ca#1.crt"},
                     "name": "it's"},
                    {"name": "empty", "cluster": {}},
                ],
                "nested": {"list": ["a", "b"], "quoted key": "x#y"},
                "preferences": {},
                "none": null,
            })
        );
        assert_eq!(parse("{\"a\": [1]}").unwrap(), json!({"a": [1]}));
        assert_eq!(parse("# nothing\n").unwrap(), Value::Null);
    }

    #[test]
    fn refuses_what_it_does_not_read_naming_the_line() {
        for (doc, line) in [
            ("a: 1\n  b: 2\n", "line 2"),
            ("a: |\n  text\n", "line 1"),
            ("a: &x 1\n", "line 1"),
            ("a: 1\na: 2\n", "line 2"),
            ("a:\n\tb: 1\n", "line 2"),
            ("a: {b: 1}\n", "line 1"),
            ("a: \"open\n  close\"\n", "line 1"),
            ("just text\n", "line 1"),
            ("a: 1\n---\nb: 2\n", "line 2"),
        ] {
            let err = parse(doc).unwrap_err();
            assert!(err.starts_with(line), "{doc:?}: {err}");
        }
    }
}
