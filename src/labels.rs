//! Label selectors: parsed from query strings or `metav1.LabelSelector` JSON, matched against
//! labels. Pure; used by the simulator's API and by the planner's checks.
//!
//! The string form is read by a port of apimachinery's `labels.Parse` (its lexer, its parser,
//! its checks of keys and values, and its error messages word for word): the equality-based
//! (`a=b`, `a==b`, `a!=b`), set-based (`a in (x,y)`, `a notin (x)`, `a`, `!a`) and integer
//! (`a>1`, `a<5`) forms, so that a selector a real apiserver refuses is refused here too.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::k8s::validation;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// The lexer's tokens (`labels.Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// `labels.Lexer`: bytes in, tokens out. A NUL byte reads as the end, as in Go.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                *b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Tok, String) {
        let mut buf = Vec::new();
        loop {
            match self.read() {
                0 => break,
                ch if is_special(ch) || is_whitespace(ch) => {
                    self.unread();
                    break;
                }
                ch => buf.push(ch),
            }
        }
        let s = String::from_utf8_lossy(&buf).into_owned();
        match keyword(&s) {
            Some(t) => (t, s),
            None => (Tok::Identifier, s),
        }
    }

    fn scan_special(&mut self) -> (Tok, String) {
        let mut last: Option<(Tok, String)> = None;
        let mut buf = Vec::new();
        loop {
            match self.read() {
                0 => break,
                ch if is_special(ch) => {
                    buf.push(ch);
                    let s = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(t) = keyword(&s) {
                        last = Some((t, s));
                    } else if last.is_some() {
                        self.unread();
                        break;
                    }
                }
                _ => {
                    self.unread();
                    break;
                }
            }
        }
        last.unwrap_or_else(|| {
            (Tok::Error, format!("error expected: keyword found '{}'", String::from_utf8_lossy(&buf)))
        })
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::End, String::new());
        }
        self.unread();
        if is_special(ch) { self.scan_special() } else { self.scan_id_or_keyword() }
    }
}

/// Where the parser reads a token: as a key and operator, or as values (where `in` and `notin`
/// are plain identifiers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

/// `labels.Parser`.
struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    None,
    Exists,
    DoesNotExist,
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn adjust(tok: Tok, ctx: Ctx) -> Tok {
        match tok {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => Tok::Identifier,
            t => t,
        }
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        let (t, l) = &self.items[self.pos];
        (Self::adjust(*t, ctx), l.clone())
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        self.pos += 1;
        let (t, l) = &self.items[self.pos - 1];
        (Self::adjust(*t, ctx), l.clone())
    }

    fn parse(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        let (key, op) = self.key_and_inferred_operator()?;
        if op == Op::Exists {
            return Ok(LabelReq::Exists(key));
        }
        if op == Op::DoesNotExist {
            return Ok(LabelReq::NotExists(key));
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, op, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Op), String> {
        let mut op = Op::None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Op::DoesNotExist;
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        // `labels.Parse` checks the key with no field path: Go prints a nil path as `<nil>`.
        if let Some(e) = validation::invalid("<nil>", &lit, &validation::label_key(&lit)) {
            return Err(e);
        }
        let (t, _) = self.lookahead(Ctx::Values);
        if (t == Tok::End || t == Tok::Comma) && op != Op::DoesNotExist {
            op = Op::Exists;
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Op, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Op::In,
            Tok::Equals => Op::Equals,
            Tok::DoubleEquals => Op::DoubleEquals,
            Tok::GreaterThan => Op::GreaterThan,
            Tok::LessThan => Op::LessThan,
            Tok::NotIn => Op::NotIn,
            Tok::NotEquals => Op::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let s = self.identifiers()?;
                // Go reports the token it looked at before the list, not the one it found.
                if self.consume(Ctx::Values).0 != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut s = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    s.insert(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(s.into_iter().collect()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        s.insert(String::new());
                        return Ok(s.into_iter().collect());
                    }
                    if t2 == Tok::Comma {
                        s.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// `labels.NewRequirement` after the parser: the values checked (integers for `>` and `<`,
/// label values for all), every error reported, several as Go aggregates them.
fn new_requirement(key: String, op: Op, values: Vec<String>) -> Result<LabelReq, String> {
    let mut errs: Vec<String> = Vec::new();
    let mut number = None;
    if matches!(op, Op::GreaterThan | Op::LessThan) {
        for (i, v) in values.iter().enumerate() {
            match v.parse::<i64>() {
                Ok(n) => number = Some(n),
                _ => errs.extend(validation::invalid(
                    &format!("values[{i}]"),
                    v,
                    &["for 'Gt', 'Lt' operators, the value must be an integer".to_string()],
                )),
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        errs.extend(validation::invalid(&format!("values[{i}][{key}]"), v, &validation::label_value(v)));
    }
    errs.dedup();
    match errs.len() {
        0 => {}
        1 => return Err(errs.remove(0)),
        _ => return Err(format!("[{}]", errs.join(", "))),
    }
    let one = || values.first().cloned().unwrap_or_default();
    Ok(match op {
        Op::In => LabelReq::In(key, values),
        Op::NotIn => LabelReq::NotIn(key, values),
        Op::NotEquals => LabelReq::NotEq(key, one()),
        Op::GreaterThan => LabelReq::Gt(key, number.unwrap_or_default()),
        Op::LessThan => LabelReq::Lt(key, number.unwrap_or_default()),
        _ => LabelReq::Eq(key, one()),
    })
}

impl LabelSelector {
    /// Parses a selector as the apiserver does (`labels.Parse`); the error is its message.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut lexer = Lexer { s: s.as_bytes(), pos: 0 };
        let mut items = Vec::new();
        loop {
            let (t, l) = lexer.lex();
            items.push((t, l));
            if t == Tok::End {
                break;
            }
        }
        let mut p = Parser { items, pos: 0 };
        Ok(LabelSelector(p.parse()?))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON value (matchLabels + matchExpressions).
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                reqs.push(LabelReq::Eq(k.clone(), val.as_str().unwrap_or_default().to_string()));
            }
        }
        if let Some(exprs) = v.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let req = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => LabelReq::In(key, values),
                    Some("NotIn") => LabelReq::NotIn(key, values),
                    Some("Exists") => LabelReq::Exists(key),
                    Some("DoesNotExist") => LabelReq::NotExists(key),
                    other => return Err(format!("unknown selector operator {other:?}")),
                };
                reqs.push(req);
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `key=value` that every match must carry (to look matches up in a label index rather
    /// than test every object), if the selector has one.
    pub fn required_pair(&self) -> Option<(&str, &str)> {
        self.0.iter().find_map(|r| match r {
            LabelReq::Eq(k, v) => Some((k.as_str(), v.as_str())),
            LabelReq::In(k, vs) if vs.len() == 1 => Some((k.as_str(), vs[0].as_str())),
            _ => None,
        })
    }

    /// Whether the selector is nothing but its [`Self::required_pair`] (what the pair's index
    /// returns then needs no further test).
    pub fn is_only_required_pair(&self) -> bool {
        self.0.len() == 1 && self.required_pair().is_some()
    }

    /// Matches labels looked up through `get` (one rule for every label representation).
    fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l > *n),
            LabelReq::Lt(k, n) => get(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < *n),
        })
    }

    /// Matches a label map.
    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_by(|k| labels.get(k).map(String::as_str))
    }

    /// Matches extracted labels (see `sim::store::Meta`).
    pub fn matches_labels(&self, labels: &[(Box<str>, Box<str>)]) -> bool {
        self.matches_by(|k| labels.iter().find(|(lk, _)| &**lk == k).map(|(_, v)| &**v))
    }

    /// Matches an object's `metadata.labels` in place (no copies: this runs per pod per budget).
    pub fn matches_value(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches_by(|k| labels.and_then(|m| m.get(k)).and_then(Value::as_str))
    }
}

/// The labels of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        LabelSelector::parse(s).expect_err(s)
    }

    #[test]
    fn selectors_are_read_as_labels_parse_reads_them() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front"), ("n", "7")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app in (web)", true),
            ("n>5,n<8", true),
            ("n>7", false),
            ("x in (in, notin)", false),
            ("app in (,web)", true),
            ("missing notin ()", true),
            ("  app = web  ", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches_map(&labels), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_get_the_apiserver_s_messages() {
        assert_eq!(err(&"(".repeat(5000)), "found '(', expected: !, identifier, or 'end of string'");
        assert_eq!(err("a=(((("), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(err("a in x"), "unable to parse requirement: found 'x' expected: '('");
        assert_eq!(err("a b=c"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(
            err(&format!("a={}", "v".repeat(64))),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"{}\": must be no more than 63 bytes",
                "v".repeat(64)
            )
        );
        assert!(
            err("a=$(x)").starts_with(
                "unable to parse requirement: values[0][a]: Invalid value: \"$\": a valid label must be an empty string"
            ),
            "{}",
            err("a=$(x)")
        );
        assert!(
            err("a=b;c").contains("values[0][a]: Invalid value: \"b;c\": a valid label must be"),
            "{}",
            err("a=b;c")
        );
        assert!(
            err("A/b/c").starts_with("unable to parse requirement: <nil>: Invalid value: \"A/b/c\": a valid label key")
        );
        assert_eq!(
            err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(err("a>-").starts_with("unable to parse requirement: [values[0]: Invalid value: \"-\": for 'Gt'"));
        assert_eq!(err("=a"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(err("a=!b"), "unable to parse requirement: found '!', expected: identifier");
    }
}
