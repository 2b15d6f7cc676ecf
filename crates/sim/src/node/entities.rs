//! Custom entities (`app.storage.entities` in the manifest): their attributes and indexes,
//! the checks on a value, and index queries (partition, range condition, filters, sort,
//! limit, cursor) as `@forge/kvs` sends them to `/api/v1/entity/query`
//! (shared/spec/forge-node-runtime.md §2.2; platform.md §6: at most 20 entities, 50
//! attributes and 7 indexes each).

use std::collections::BTreeMap;

use serde_json::Value;

use super::serve::conditions_hold;

/// The manifest's limits on entity definitions.
pub const MAX_ENTITIES: usize = 20;
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_INDEXES: usize = 7;
/// Results per query page.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 10;

/// The index every entity has: by key.
pub const BY_KEY: &str = "by-key";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entities {
    pub defs: BTreeMap<String, Entity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entity {
    /// Attribute name to type: `string`, `integer`, `float`, `boolean`, `any`.
    pub attributes: BTreeMap<String, String>,
    pub indexes: BTreeMap<String, Index>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The attribute the range condition and the sort apply to (`None`: the key).
    pub range: Option<String>,
    pub partition: Vec<String>,
}

/// One page of a query: (key, value) pairs and the cursor of the next page, if any.
pub type QueryPage = (Vec<(String, Value)>, Option<String>);

/// A refused entity call: the platform's code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityError {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> EntityError {
    EntityError {
        code,
        message: message.into(),
    }
}

impl Entities {
    /// The definitions of `app.storage.entities`; a definition the platform would refuse is
    /// an error naming it.
    pub fn of(manifest: &roa_check::Manifest) -> Result<Entities, String> {
        let list = manifest
            .root
            .get("app")
            .and_then(|a| a.get("storage"))
            .and_then(|s| s.get("entities"));
        let mut defs = BTreeMap::new();
        let Some(signoff_yaml::Value::Seq(items)) = list.map(|l| &l.value) else {
            return Ok(Entities { defs });
        };
        if items.len() > MAX_ENTITIES {
            return Err(format!(
                "{} custom entities; an app may define {MAX_ENTITIES}",
                items.len()
            ));
        }
        for item in items {
            let name = item
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or("a custom entity needs a name")?
                .to_string();
            let mut entity = Entity::default();
            if let Some(signoff_yaml::Value::Map(attrs)) = item.get("attributes").map(|a| &a.value)
            {
                for (k, v) in attrs {
                    let Some(attr) = k.as_str() else { continue };
                    let ty = v.get("type").and_then(|t| t.as_str()).unwrap_or("any");
                    entity.attributes.insert(attr.to_string(), ty.to_string());
                }
            }
            if entity.attributes.len() > MAX_ATTRIBUTES {
                return Err(format!(
                    "entity `{name}` has {} attributes; at most {MAX_ATTRIBUTES}",
                    entity.attributes.len()
                ));
            }
            if let Some(signoff_yaml::Value::Seq(indexes)) = item.get("indexes").map(|i| &i.value) {
                for index in indexes {
                    let (index_name, def) = match index.as_str() {
                        // A single attribute: an index of that name over it.
                        Some(attr) => (
                            attr.to_string(),
                            Index {
                                range: Some(attr.to_string()),
                                partition: Vec::new(),
                            },
                        ),
                        None => {
                            let index_name =
                                index.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                                    format!("an index of entity `{name}` needs a name")
                                })?;
                            let strings = |field: &str| -> Vec<String> {
                                match index.get(field).map(|f| &f.value) {
                                    Some(signoff_yaml::Value::Seq(s)) => s
                                        .iter()
                                        .filter_map(|v| v.as_str().map(str::to_string))
                                        .collect(),
                                    _ => Vec::new(),
                                }
                            };
                            let range = strings("range").into_iter().next();
                            (
                                index_name.to_string(),
                                Index {
                                    range,
                                    partition: strings("partition"),
                                },
                            )
                        }
                    };
                    for attr in def.range.iter().chain(&def.partition) {
                        if !entity.attributes.contains_key(attr) {
                            return Err(format!(
                                "index `{index_name}` of entity `{name}` names attribute `{attr}`, which the entity does not have"
                            ));
                        }
                    }
                    entity.indexes.insert(index_name, def);
                }
            }
            if entity.indexes.len() > MAX_INDEXES {
                return Err(format!(
                    "entity `{name}` has {} indexes; at most {MAX_INDEXES}",
                    entity.indexes.len()
                ));
            }
            defs.insert(name, entity);
        }
        Ok(Entities { defs })
    }

    pub fn get(&self, name: &str) -> Result<&Entity, EntityError> {
        self.defs.get(name).ok_or_else(|| {
            refuse(
                "INVALID_ENTITY_TYPE",
                format!("no custom entity `{name}` in the manifest's app.storage.entities"),
            )
        })
    }
}

impl Entity {
    /// A value must be an object whose attributes the entity declares, of their types.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), EntityError> {
        let Value::Object(fields) = value else {
            return Err(refuse(
                "INVALID_ENTITY_VALUE",
                format!("a `{name}` value must be an object"),
            ));
        };
        for (attr, v) in fields {
            let Some(ty) = self.attributes.get(attr) else {
                return Err(refuse(
                    "INVALID_ENTITY_ATTRIBUTE",
                    format!("entity `{name}` has no attribute `{attr}`"),
                ));
            };
            let ok = match ty.as_str() {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "float" => v.is_number(),
                "boolean" => v.is_boolean(),
                _ => true,
            };
            if !ok && !v.is_null() {
                return Err(refuse(
                    "INVALID_ENTITY_VALUE",
                    format!("attribute `{attr}` of `{name}` must be of type {ty}"),
                ));
            }
        }
        Ok(())
    }

    /// One page of an index query over `rows` (key, value) of this entity.
    pub fn query(&self, req: &Value, rows: Vec<(String, Value)>) -> Result<QueryPage, EntityError> {
        let index_name = req
            .get("indexName")
            .and_then(Value::as_str)
            .unwrap_or(BY_KEY);
        let index = match self.indexes.get(index_name) {
            Some(i) => i.clone(),
            None if index_name == BY_KEY => Index {
                range: None,
                partition: Vec::new(),
            },
            None => {
                return Err(refuse(
                    "INVALID_ENTITY_INDEX",
                    format!("no index `{index_name}`"),
                ));
            }
        };
        let limit = match req.get("limit") {
            None | Some(Value::Null) => DEFAULT_PAGE,
            Some(l) => match l.as_u64() {
                Some(n) if (1..=MAX_PAGE as u64).contains(&n) => n as usize,
                _ => {
                    return Err(refuse(
                        "COMPLEX_QUERY_PAGE_LIMIT_NOT_IN_RANGE",
                        format!("limit {l} is outside 1 to {MAX_PAGE}"),
                    ));
                }
            },
        };
        let partition: Vec<Value> = req
            .get("partition")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !partition.is_empty() && partition.len() != index.partition.len() {
            return Err(refuse(
                "INVALID_FILTER_VALUES",
                format!(
                    "index `{index_name}` is partitioned by {} attribute(s), the query gives {}",
                    index.partition.len(),
                    partition.len()
                ),
            ));
        }
        let field = |key: &str, value: &Value, attr: &Option<String>| -> Value {
            match attr {
                None => Value::String(key.to_string()),
                Some(a) => value.get(a).cloned().unwrap_or(Value::Null),
            }
        };
        let mut hits = Vec::new();
        for (key, value) in rows {
            if !partition.is_empty()
                && index
                    .partition
                    .iter()
                    .zip(&partition)
                    .any(|(a, v)| value.get(a) != Some(v))
            {
                continue;
            }
            if let Some(range) = req.get("range").filter(|r| !r.is_null()) {
                let probe = serde_json::json!({"v": field(&key, &value, &index.range)});
                let cond = serde_json::json!({"and": [{"property": "v", "condition": range.get("condition"), "values": range.get("values")}]});
                if !conditions_hold(&cond, Some(&probe))
                    .map_err(|m| refuse("INVALID_FILTER_CONDITION", m))?
                {
                    continue;
                }
            }
            if let Some(filters) = req.get("filters").filter(|f| !f.is_null())
                && !conditions_hold(filters, Some(&value))
                    .map_err(|m| refuse("INVALID_FILTER_CONDITION", m))?
            {
                continue;
            }
            hits.push((field(&key, &value, &index.range), key, value));
        }
        hits.sort_by(|a, b| order(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
        if req.get("sort").and_then(Value::as_str) == Some("DESC") {
            hits.reverse();
        }
        let start = match req.get("cursor").and_then(Value::as_str) {
            None => 0,
            Some(c) => {
                let after = decode(c).ok_or_else(|| {
                    refuse(
                        "INVALID_CURSOR",
                        format!("cursor `{c}` was not issued by a query"),
                    )
                })?;
                hits.iter()
                    .position(|h| h.1 == after)
                    .map_or(hits.len(), |p| p + 1)
            }
        };
        let page: Vec<(String, Value)> = hits
            .iter()
            .skip(start)
            .take(limit)
            .map(|h| (h.1.clone(), h.2.clone()))
            .collect();
        let more = start + page.len() < hits.len();
        let cursor = more.then(|| encode(&page[page.len() - 1].0));
        Ok((page, cursor))
    }
}

fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}
