//! Label and field selectors with kube-apiserver's grammar and matching rules.

use serde_json::{Map, Value};

/// A selector string that does not parse; reported as 400 BadRequest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelRequirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value`; also true when the label is absent.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`; also true when the label is absent.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
    /// `key>3`: present and an integer greater than the bound.
    GreaterThan(String, i64),
    /// `key<3`: present and an integer less than the bound.
    LessThan(String, i64),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            chars: input.chars().collect(),
            pos: 0,
            input,
        };
        let mut requirements = Vec::new();
        parser.skip_ws();
        if parser.at_end() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(parser.requirement()?);
            parser.skip_ws();
            match parser.next() {
                None => break,
                Some(',') => continue,
                Some(c) => return Err(parser.error(&format!("unexpected '{c}'"))),
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
            LabelRequirement::GreaterThan(k, n) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            LabelRequirement::LessThan(k, n) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> SelectorError {
        SelectorError(format!(
            "{what} at position {} in {:?}",
            self.pos, self.input
        ))
    }

    /// A key or value: everything up to whitespace or an operator character.
    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !",=!()<>".contains(c))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let key = self.word();
        if key.is_empty() {
            return Err(self.error("expected a label key"));
        }
        Ok(key)
    }

    fn value(&mut self) -> String {
        self.skip_ws();
        self.word()
    }

    fn integer(&mut self) -> Result<i64, SelectorError> {
        let value = self.value();
        value
            .parse()
            .map_err(|_| self.error(&format!("{value:?} is not an integer")))
    }

    fn requirement(&mut self) -> Result<LabelRequirement, SelectorError> {
        self.skip_ws();
        if self.peek() == Some('!') {
            self.pos += 1;
            return Ok(LabelRequirement::NotExists(self.key()?));
        }
        let key = self.key()?;
        self.skip_ws();
        match self.peek() {
            None | Some(',') => Ok(LabelRequirement::Exists(key)),
            Some('=') => {
                self.pos += 1;
                if self.peek() == Some('=') {
                    self.pos += 1;
                }
                Ok(LabelRequirement::Equals(key, self.value()))
            }
            Some('!') => {
                self.pos += 1;
                if self.next() != Some('=') {
                    return Err(self.error("expected '=' after '!'"));
                }
                Ok(LabelRequirement::NotEquals(key, self.value()))
            }
            Some('>') => {
                self.pos += 1;
                Ok(LabelRequirement::GreaterThan(key, self.integer()?))
            }
            Some('<') => {
                self.pos += 1;
                Ok(LabelRequirement::LessThan(key, self.integer()?))
            }
            Some(_) => {
                let op = self.word();
                let values = self.value_set()?;
                match op.as_str() {
                    "in" => Ok(LabelRequirement::In(key, values)),
                    "notin" => Ok(LabelRequirement::NotIn(key, values)),
                    _ => Err(self.error(&format!("unknown operator {op:?}"))),
                }
            }
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if self.next() != Some('(') {
            return Err(self.error("expected '('"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value());
            self.skip_ws();
            match self.next() {
                Some(',') => continue,
                Some(')') => break,
                _ => return Err(self.error("expected ',' or ')'")),
            }
        }
        Ok(values)
    }
}

/// Comparison in one field selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

/// A parsed `fieldSelector`: every term must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(input, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, op, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, FieldOp::NotEquals, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, FieldOp::Equals, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, FieldOp::Equals, v)
            } else {
                return Err(SelectorError(format!("{term:?}: expected field=value")));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                op,
                value: unescape(value.trim()),
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object is selected; absent fields read as the empty string.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|req| {
            let actual = field_value(object, &req.field);
            match req.op {
                FieldOp::Equals => actual == req.value,
                FieldOp::NotEquals => actual != req.value,
            }
        })
    }
}

/// The value of a dotted field path as a field selector compares it.
pub fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for part in path.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn split_unescaped(input: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        let current = parts.last_mut();
        match (escaped, c, current) {
            (false, '\\', Some(p)) => {
                escaped = true;
                p.push(c);
            }
            (false, c, _) if c == separator => parts.push(String::new()),
            (_, c, Some(p)) => {
                escaped = false;
                p.push(c);
            }
            (_, _, None) => {}
        }
    }
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn selects(selector: &str, l: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(Some(&labels(l)))
    }

    #[test]
    fn parses_every_operator() {
        let s =
            LabelSelector::parse("a=1, b==2,c!=3,d in (x, y),e notin (z),f,!g,h>4,i<5").unwrap();
        assert_eq!(
            s.requirements,
            vec![
                LabelRequirement::Equals("a".into(), "1".into()),
                LabelRequirement::Equals("b".into(), "2".into()),
                LabelRequirement::NotEquals("c".into(), "3".into()),
                LabelRequirement::In("d".into(), vec!["x".into(), "y".into()]),
                LabelRequirement::NotIn("e".into(), vec!["z".into()]),
                LabelRequirement::Exists("f".into()),
                LabelRequirement::NotExists("g".into()),
                LabelRequirement::GreaterThan("h".into(), 4),
                LabelRequirement::LessThan("i".into(), 5),
            ]
        );
    }

    #[test]
    fn matching_follows_apiserver_semantics() {
        let l = json!({"app": "web", "tier": "front", "n": "7"});
        assert!(selects("app=web", l.clone()));
        assert!(selects("app==web,tier=front", l.clone()));
        assert!(!selects("app=db", l.clone()));
        assert!(selects("app!=db", l.clone()));
        // Absent labels satisfy != and notin.
        assert!(selects("missing!=x", l.clone()));
        assert!(selects("missing notin (x)", l.clone()));
        assert!(!selects("missing in (x)", l.clone()));
        assert!(selects("tier in (back,front)", l.clone()));
        assert!(!selects("tier notin (back,front)", l.clone()));
        assert!(selects("app", l.clone()));
        assert!(!selects("!app", l.clone()));
        assert!(selects("!missing", l.clone()));
        assert!(selects("n>6,n<8", l.clone()));
        assert!(!selects("n>7", l.clone()));
        assert!(selects("", l));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in ["=x", "a in x", "a in (x", "a b", "a>x", "a!x", "a,,b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "ns1"},
            "spec": {"nodeName": "node-a", "hostNetwork": false},
        });
        let s = FieldSelector::parse("metadata.name=web,spec.nodeName==node-a").unwrap();
        assert!(s.matches(&pod));
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns1")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("spec.hostNetwork=false")
                .unwrap()
                .matches(&pod)
        );
        // An absent field is the empty string.
        assert!(FieldSelector::parse("status.phase=").unwrap().matches(&pod));
        assert!(FieldSelector::parse("no-operator").is_err());
    }

    #[test]
    fn field_values_may_escape_commas() {
        let s = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(s.requirements.len(), 1);
        assert_eq!(s.requirements[0].value, "a,b");
    }
}
