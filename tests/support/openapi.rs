//! The admin API's OpenAPI document (generated from the handlers by utoipa,
//! `certgate::admin::openapi_document`) as a test oracle: every response a
//! test gets from `/api/v1` is checked against the operation's documented statuses, media types
//! and JSON schema, so the document cannot drift from what the server really answers.
//!
//! A small validator for the subset of JSON Schema the document uses: `$ref`, `type` (a name or,
//! as OpenAPI 3.1 writes nullable values, a list such as `["string", "null"]`), `nullable`, `enum`, `properties`, `required`, `additionalProperties`, `items`, `allOf`,
//! `anyOf`, `oneOf`, `minimum` and `pattern` (only the `^[class]{m,n}$` shape of names).

use std::sync::OnceLock;

use serde_json::Value;

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| certgate::admin::openapi_document().clone())
}

/// Follow a local `$ref` (`#/components/...`).
pub fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut cur = v;
    for _ in 0..16 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}"));
                cur = doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}"));
            }
            None => return cur,
        }
    }
    panic!("$ref loop at {v}")
}

/// The document's path template for a concrete API path (`/api/v1/certificates/x/export?f=1`
/// -> `/certificates/{name}/export`).
pub fn template_for(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or("");
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    let paths = document()["paths"].as_object()?;
    paths
        .keys()
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len() && ts.iter().zip(&segs).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        // Literal segments beat parameters.
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
        .cloned()
}

/// Check one response against the document. Returns the problems (empty when it conforms).
pub fn check_response(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &[u8]) -> Vec<String> {
    let doc = document();
    let Some(template) = template_for(path) else {
        // Unknown routes answer 404 from the fallback, which the document does not list.
        return if status == 404 { vec![] } else { vec![format!("{path} is not in the document")] };
    };
    let Some(op) = doc["paths"][&template].get(method.to_ascii_lowercase()) else {
        return vec![format!("{method} {template} is not in the document")];
    };
    let Some(response) = op["responses"].get(status.to_string()) else {
        return vec![format!("{method} {template}: status {status} is not documented")];
    };
    let response = resolve(doc, response);
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if body.is_empty() {
            vec![]
        } else {
            vec![format!("{method} {template} {status}: documented without a body, got {} bytes", body.len())]
        };
    };
    let ctype = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(media) = content.get(&ctype) else {
        return vec![format!(
            "{method} {template} {status}: content type '{ctype}' is not documented (documented: {:?})",
            content.keys().collect::<Vec<_>>()
        )];
    };
    if ctype != "application/json" {
        return vec![];
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return vec![format!("{method} {template} {status}: the body is not JSON ({e})")],
    };
    let mut errors = Vec::new();
    validate(doc, &media["schema"], &value, "$", &mut errors);
    errors.into_iter().map(|e| format!("{method} {template} {status}: {e}")).collect()
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("unknown type {other} in the document"),
    }
}

/// `^[chars]{m,n}$` patterns (names); anything else is not checked here.
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let inner = pattern.strip_prefix("^[")?.strip_suffix('$')?;
    let (class, counts) = inner.split_once("]{")?;
    let (min, max) = counts.strip_suffix('}')?.split_once(',')?;
    let (min, max): (usize, usize) = (min.parse().ok()?, max.parse().ok()?);
    let allowed = |c: char| {
        let mut chars = class.chars().peekable();
        while let Some(a) = chars.next() {
            if chars.peek() == Some(&'-') {
                chars.next();
                match chars.next() {
                    Some(b) if a <= c && c <= b => return true,
                    Some(_) => continue,
                    None => return c == a || c == '-',
                }
            } else if a == c {
                return true;
            }
        }
        false
    };
    let n = s.chars().count();
    Some(n >= min && n <= max && s.chars().all(allowed))
}

pub fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let types: Option<Vec<&str>> = match schema.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    };
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true)
            || types.as_ref().is_some_and(|ts| ts.contains(&"null"))
        {
            return;
        }
        if types.is_some() || schema.get("properties").is_some() {
            errors.push(format!("{at}: null, but the schema is not nullable"));
            return;
        }
    }
    if let Some(ts) = &types {
        if !ts.iter().any(|t| type_matches(t, v)) {
            errors.push(format!("{at}: expected {}, got {v}", ts.join(" or ")));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            errors.push(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), v.as_str()) {
        if pattern_matches(p, s) == Some(false) {
            errors.push(format!("{at}: '{s}' does not match {p}"));
        }
    }
    for sub in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        validate(doc, sub, v, at, errors);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(subs) = schema.get(key).and_then(Value::as_array) {
            let passing = subs
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    validate(doc, s, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if passing == 0 || (key == "oneOf" && passing > 1) {
                errors.push(format!("{at}: {passing} of the {key} alternatives match {v}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let req = req.as_str().unwrap_or_default();
            if !obj.contains_key(req) {
                errors.push(format!("{at}: the required field '{req}' is missing"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => validate(doc, sub, val, &format!("{at}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: the field '{k}' is not documented")),
                    Some(extra @ Value::Object(_)) => validate(doc, extra, val, &format!("{at}.{k}"), errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}
