//! Helpers shared by the fuzz targets: splitting one input into several values, and comparing
//! JSON values that went through a text round trip.
use serde_json::Value;

/// Splits `data` at NUL bytes into at most `n` UTF-8 (lossy) strings.
pub fn split_strings(data: &[u8], n: usize) -> Vec<String> {
    data.splitn(n, |&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Equal JSON, with numbers compared as f64 within 1 ulp-ish relative error: serde_json's
/// default float parser is not always correctly rounded, so a text round trip may move the last
/// bit. Everything else (structure, strings, integers) must match exactly.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Serializes `v`, parses it back and checks the result is the same (see `same_json`).
pub fn assert_round_trip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_string(v).expect("serializing our own type");
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("our own output does not parse back: {e}: {text}"));
    let a = serde_json::to_value(v).expect("to_value");
    let b = serde_json::to_value(&back).expect("to_value");
    assert!(same_json(&a, &b), "round trip changed the value:\n{a}\n{b}");
}
