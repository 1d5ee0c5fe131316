//! Reads `template.yaml` and resolves the CloudFormation intrinsics the local cloud
//! needs (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`, `Fn::Equals`, `AWS::NoValue`), so
//! the local resources and function environments come from the same file as AWS.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, Clone)]
pub struct Template {
    pub body: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let yaml: Yaml =
            serde_yaml_ng::from_str(text).context("template.yaml is not valid YAML")?;
        Ok(Self {
            body: to_json(yaml)?,
        })
    }

    pub fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.body["Resources"].as_object().into_iter().flatten()
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Value> {
        self.body["Resources"]
            .get(logical_id)
            .ok_or_else(|| anyhow!("template has no resource {logical_id}"))
    }

    pub fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources().filter(move |(_, r)| r["Type"] == kind)
    }

    /// Parameter defaults, overridden by `overrides`.
    pub fn parameters(&self, overrides: &HashMap<String, String>) -> HashMap<String, String> {
        let mut values: HashMap<String, String> = self.body["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, p)| Some((name.clone(), scalar(&p["Default"])?)))
            .collect();
        values.extend(overrides.clone());
        values
    }
}

/// Converts YAML with CloudFormation short-form tags into the JSON long form.
fn to_json(yaml: Yaml) -> Result<Value> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => serde_json::to_value(n)?,
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_>>()?)
        }
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s,
                    other => serde_yaml_ng::to_string(&other)?.trim().to_owned(),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value)?;
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                "GetAtt" => {
                    let value = match value {
                        Value::String(s) => {
                            let (resource, attribute) = s
                                .split_once('.')
                                .ok_or_else(|| anyhow!("!GetAtt {s} has no attribute"))?;
                            Value::Array(vec![resource.into(), attribute.into()])
                        }
                        other => other,
                    };
                    return Ok(single("Fn::GetAtt", value));
                }
                other => format!("Fn::{other}"),
            };
            single(&long, value)
        }
    })
}

fn single(key: &str, value: Value) -> Value {
    Value::Object(Map::from_iter([(key.to_owned(), value)]))
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What `Ref` and `Fn::GetAtt` of one provisioned resource give.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

/// Resolves intrinsics against parameters, conditions and provisioned resources.
pub struct Resolver<'a> {
    pub stack_name: &'a str,
    pub parameters: &'a HashMap<String, String>,
    pub conditions: HashMap<String, bool>,
    pub resources: &'a HashMap<String, Physical>,
}

/// Marker for `AWS::NoValue`: the property is dropped.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl<'a> Resolver<'a> {
    pub fn new(
        template: &Template,
        stack_name: &'a str,
        parameters: &'a HashMap<String, String>,
        resources: &'a HashMap<String, Physical>,
    ) -> Result<Self> {
        let mut resolver = Self {
            stack_name,
            parameters,
            conditions: HashMap::new(),
            resources,
        };
        let mut conditions = HashMap::new();
        for (name, condition) in template.body["Conditions"]
            .as_object()
            .into_iter()
            .flatten()
        {
            conditions.insert(name.clone(), resolver.condition(condition)?);
        }
        resolver.conditions = conditions;
        Ok(resolver)
    }

    fn condition(&self, value: &Value) -> Result<bool> {
        if let Some(args) = value.get("Fn::Equals") {
            let [a, b] = args.as_array().map(Vec::as_slice).unwrap_or_default() else {
                bail!("Fn::Equals needs two arguments");
            };
            return Ok(self.resolve(a)? == self.resolve(b)?);
        }
        if let Some(name) = value.get("Condition").and_then(Value::as_str) {
            return self
                .conditions
                .get(name)
                .copied()
                .ok_or_else(|| anyhow!("unknown condition {name}"));
        }
        if let Some(Value::Array(args)) = value.get("Fn::Not") {
            return Ok(!self.condition(&args[0])?);
        }
        bail!("unsupported condition {value}")
    }

    /// Resolves every intrinsic inside `value`.
    pub fn resolve(&self, value: &Value) -> Result<Value> {
        let resolved = self.resolve_inner(value)?;
        Ok(resolved)
    }

    fn resolve_inner(&self, value: &Value) -> Result<Value> {
        match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_inner(v))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|v| v != NO_VALUE)
                    .collect(),
            )),
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => {
                        self.reference(arg.as_str().ok_or_else(|| anyhow!("Ref needs a name"))?)
                    }
                    "Fn::GetAtt" => {
                        let parts: Vec<&str> = arg
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let [resource, attribute] = parts[..] else {
                            bail!("bad Fn::GetAtt {arg}")
                        };
                        self.attribute(resource, attribute).map(Value::String)
                    }
                    "Fn::Sub" => self.sub(arg).map(Value::String),
                    "Fn::If" => {
                        let args = arg
                            .as_array()
                            .ok_or_else(|| anyhow!("Fn::If needs a list"))?;
                        let [name, yes, no] = &args[..] else {
                            bail!("Fn::If needs three arguments")
                        };
                        let name = name.as_str().unwrap_or_default();
                        let holds = *self
                            .conditions
                            .get(name)
                            .ok_or_else(|| anyhow!("unknown condition {name}"))?;
                        self.resolve_inner(if holds { yes } else { no })
                    }
                    _ => self.resolve_object(map),
                }
            }
            Value::Object(map) => self.resolve_object(map),
            other => Ok(other.clone()),
        }
    }

    fn resolve_object(&self, map: &Map<String, Value>) -> Result<Value> {
        let mut out = Map::new();
        for (k, v) in map {
            let v = self.resolve_inner(v)?;
            if v != NO_VALUE {
                out.insert(k.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    fn reference(&self, name: &str) -> Result<Value> {
        let value = match name {
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT_ID.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => self.stack_name.to_owned(),
            "AWS::NoValue" => NO_VALUE.to_owned(),
            _ => match self.parameters.get(name) {
                Some(p) => p.clone(),
                None => self
                    .resources
                    .get(name)
                    .map(|r| r.reference.clone())
                    .ok_or_else(|| anyhow!("Ref to {name}, which is not provisioned locally"))?,
            },
        };
        Ok(Value::String(value))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String> {
        self.resources
            .get(resource)
            .and_then(|r| r.attributes.get(attribute))
            .cloned()
            .ok_or_else(|| anyhow!("Fn::GetAtt {resource}.{attribute} is not available locally"))
    }

    fn sub(&self, arg: &Value) -> Result<String> {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(items) => (
                items.first().and_then(Value::as_str).unwrap_or_default(),
                items
                    .get(1)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => bail!("bad Fn::Sub {arg}"),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in {text}"))?
                + start;
            let name = &rest[start + 2..end];
            let value = if let Some(v) = vars.get(name) {
                self.resolve_inner(v)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else if let Some((resource, attribute)) = name.split_once('.') {
                self.attribute(resource, attribute)?
            } else {
                self.reference(name)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Environment: { Type: String, Default: dev }
  Rate: { Type: Number, Default: 50 }
Conditions:
  IsDev: !Equals [!Ref Environment, dev]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Name: !Sub "${AWS::StackName}-${Environment}-q"
      Arn: !GetAtt Other.Arn
      Mode: !If [IsDev, "OFF", "ON"]
      Gone: !If [IsDev, !Ref AWS::NoValue, x]
      List: [!Ref Rate, !Ref Other]
"#;

    #[test]
    fn resolves_short_form_intrinsics() {
        let template = Template::parse(TEMPLATE).unwrap();
        let params = template.parameters(&HashMap::new());
        let resources = HashMap::from([(
            "Other".to_owned(),
            Physical {
                reference: "other-ref".into(),
                attributes: HashMap::from([("Arn".to_owned(), "arn:other".to_owned())]),
            },
        )]);
        let resolver = Resolver::new(&template, "stk", &params, &resources).unwrap();
        let props = resolver
            .resolve(&template.resource("Queue").unwrap()["Properties"])
            .unwrap();
        assert_eq!(props["Name"], "stk-dev-q");
        assert_eq!(props["Arn"], "arn:other");
        assert_eq!(props["Mode"], "OFF");
        assert!(props.get("Gone").is_none());
        assert_eq!(props["List"], serde_json::json!(["50", "other-ref"]));
    }

    #[test]
    fn the_project_template_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template = Template::load(&path).unwrap();
        assert!(template.resource("HeraldTable").is_ok());
    }
}
