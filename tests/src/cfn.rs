//! CloudFormation templates for the deployment tests: running `cfn-lint`,
//! loading a template as JSON, and evaluating the intrinsic functions the
//! stacks in `deploy/cloudformation` use, so a test can see the values a
//! stack would deploy (the instances' user data above all).
//!
//! Inputs: a template path, parameter values. Outputs: the template as a
//! `serde_json::Value` (with `Ref`, `Fn::Sub` ... in their JSON form) and
//! rendered values. The YAML short forms (`!Ref`, `!Sub`) are decoded by
//! cfn-lint's own loader (`python3 -c 'import cfnlint'`), the same one the
//! lint uses, rather than by a second YAML reader here.
//!
//! It does not talk to AWS: a resource's `Ref` renders as `<LogicalId>-id`
//! (an SQS queue's as a queue URL ending in it),
//! `Fn::GetAtt` as `<LogicalId>.<Attribute>`, and the pseudo parameters as
//! fixed test values. Functions the stacks do not use fail the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Values of the pseudo parameters in rendered templates.
pub const STACK_NAME: &str = "test-stack";
/// `AWS::Region` in rendered templates.
pub const REGION: &str = "eu-west-1";
/// `AWS::AccountId` in rendered templates.
pub const ACCOUNT_ID: &str = "123456789012";

/// `cfn-lint` on `files`: (success, everything it printed). It runs from
/// `python3`'s packages, the interpreter [`load`] uses (a `cfn-lint` command
/// on `PATH` may belong to another one).
pub fn lint(files: &[&Path]) -> (bool, String) {
    let script = "import sys\n\
                  from cfnlint.runner import main\n\
                  sys.argv[0] = 'cfn-lint'\n\
                  sys.exit(main())\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (scripts/test installs cfn-lint): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The template at `path` as JSON, decoded by cfn-lint's YAML loader.
pub fn load(path: &Path) -> Value {
    let script = "import json, sys\n\
                  from cfnlint.decode import cfn_yaml\n\
                  json.dump(cfn_yaml.load(sys.argv[1]), sys.stdout)\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        output.status.success(),
        "cfn-lint's loader refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the loader prints JSON")
}

/// A template with chosen parameter values, to render values from.
pub struct Stack<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, Value>,
}

impl<'a> Stack<'a> {
    /// The template with every parameter at its default, then `overrides`
    /// (a `CommaDelimitedList` value is given comma-separated, as to AWS).
    pub fn new(template: &'a Value, overrides: &[(&str, &str)]) -> Self {
        let declared = template["Parameters"]
            .as_object()
            .expect("the template declares Parameters");
        let mut parameters = BTreeMap::new();
        for (name, declaration) in declared {
            let given = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::String((*v).to_string()))
                .or_else(|| declaration.get("Default").cloned())
                .unwrap_or(Value::String(format!("{name}-value")));
            let text = match &given {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let value = if declaration["Type"] == "CommaDelimitedList" {
                let items = if text.is_empty() {
                    vec![Value::String(String::new())]
                } else {
                    text.split(',').map(|s| Value::String(s.into())).collect()
                };
                Value::Array(items)
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        for (name, _) in overrides {
            assert!(
                parameters.contains_key(*name),
                "the template has no parameter {name}"
            );
        }
        Self {
            template,
            parameters,
        }
    }

    /// The resource `logical_id`'s definition.
    pub fn resource(&self, logical_id: &str) -> &'a Value {
        let resource = &self.template["Resources"][logical_id];
        assert!(resource.is_object(), "no resource {logical_id}");
        resource
    }

    /// Evaluates every intrinsic function in `value`.
    pub fn render(&self, value: &Value) -> Value {
        self.render_with(value, &BTreeMap::new())
    }

    /// `value` rendered to a string; fails the test when it is not one.
    pub fn render_string(&self, value: &Value) -> String {
        match self.render(value) {
            Value::String(s) => s,
            other => panic!("expected a string, rendered {other}"),
        }
    }

    /// Whether the template's condition `name` holds.
    pub fn condition(&self, name: &str) -> bool {
        let definition = &self.template["Conditions"][name];
        assert!(!definition.is_null(), "no condition {name}");
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> bool {
        let (function, args) = single_key(value).expect("a condition function");
        match function {
            "Fn::Equals" => self.render(&args[0]) == self.render(&args[1]),
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::And" => array(args).iter().all(|a| self.truth(a)),
            "Fn::Or" => array(args).iter().any(|a| self.truth(a)),
            "Condition" => self.condition(args.as_str().expect("a condition name")),
            other => panic!("condition function {other} is not supported here"),
        }
    }

    fn reference(&self, name: &str, variables: &BTreeMap<String, Value>) -> Value {
        if let Some(v) = variables.get(name) {
            return v.clone();
        }
        let pseudo = match name {
            "AWS::StackName" => Some(STACK_NAME),
            "AWS::Region" => Some(REGION),
            "AWS::AccountId" => Some(ACCOUNT_ID),
            "AWS::Partition" => Some("aws"),
            _ => None,
        };
        if let Some(p) = pseudo {
            return Value::String(p.into());
        }
        if let Some(v) = self.parameters.get(name) {
            return v.clone();
        }
        if let Some((resource, attribute)) = name.split_once('.') {
            self.resource(resource);
            return Value::String(format!("{resource}.{attribute}"));
        }
        let resource = self.resource(name);
        // An SQS queue's Ref is its URL (the sensor checks it is one).
        if resource["Type"] == "AWS::SQS::Queue" {
            return Value::String(format!(
                "https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}-id"
            ));
        }
        Value::String(format!("{name}-id"))
    }

    fn render_with(&self, value: &Value, variables: &BTreeMap<String, Value>) -> Value {
        match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_with(v, variables))
                    .collect(),
            ),
            Value::Object(map) => match single_key(value) {
                Some((function, args))
                    if function == "Ref"
                        || function == "Condition"
                        || function.starts_with("Fn::") =>
                {
                    self.function(function, args, variables)
                }
                _ => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), self.render_with(v, variables)))
                        .collect(),
                ),
            },
            other => other.clone(),
        }
    }

    fn function(&self, function: &str, args: &Value, vars: &BTreeMap<String, Value>) -> Value {
        match function {
            "Ref" => self.reference(args.as_str().expect("Ref names a string"), vars),
            "Fn::GetAtt" => {
                let parts: Vec<&str> = match args {
                    Value::String(s) => s.splitn(2, '.').collect(),
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("bad Fn::GetAtt {args}"),
                };
                self.resource(parts[0]);
                Value::String(parts.join("."))
            }
            "Fn::Base64" => self.render_with(args, vars),
            "Fn::If" => {
                let a = array(args);
                let name = a[0].as_str().expect("Fn::If names a condition");
                let chosen = if self.condition(name) { &a[1] } else { &a[2] };
                self.render_with(chosen, vars)
            }
            "Fn::Join" => {
                let a = array(args);
                let separator = a[0].as_str().expect("Fn::Join separator");
                let items = self.render_with(&a[1], vars);
                let parts: Vec<String> = array(&items)
                    .iter()
                    .map(|v| v.as_str().expect("Fn::Join joins strings").to_string())
                    .collect();
                Value::String(parts.join(separator))
            }
            "Fn::Sub" => {
                let (text, mut inner) = match args {
                    Value::String(s) => (s.as_str(), vars.clone()),
                    Value::Array(a) => {
                        let mut inner = vars.clone();
                        for (k, v) in a[1].as_object().expect("Fn::Sub variables") {
                            inner.insert(k.clone(), self.render_with(v, vars));
                        }
                        (a[0].as_str().expect("Fn::Sub text"), inner)
                    }
                    _ => panic!("bad Fn::Sub {args}"),
                };
                Value::String(self.substitute(text, &mut inner))
            }
            other => panic!("{other} is not supported here"),
        }
    }

    fn substitute(&self, text: &str, vars: &mut BTreeMap<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("Fn::Sub: unclosed ${") + start;
            let name = &rest[start + 2..end];
            match self.reference(name, vars) {
                Value::String(s) => out.push_str(&s),
                other => panic!("Fn::Sub: ${{{name}}} is not a string: {other}"),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a list: {value}"))
}
