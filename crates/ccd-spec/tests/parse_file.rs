//! `parse_file`: a spec file judged as the controller and `ccd sync` judge it.
#![allow(clippy::unwrap_used)]

const WEB: &str = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: example/web:1\n  version: \"1\"\n  port: 8080\n";

#[test]
fn a_spec_file_is_valid_only_under_its_apps_name() {
    assert_eq!(
        ccd_spec::parse_file("web", "specs/web.yaml", WEB.as_bytes())
            .unwrap()
            .metadata
            .name,
        "web"
    );
    let misnamed = ccd_spec::parse_file("api", "deploy/api.yaml", WEB.as_bytes()).unwrap_err();
    assert_eq!(
        misnamed,
        [
            "deploy/api.yaml:1:1: metadata.name: \"web\" does not match the file name; name the file web.yaml or the app \"api\""
        ]
    );
    let broken = WEB.replace("port: 8080", "port: 70000");
    let problems = ccd_spec::parse_file("web", "deploy/web.yaml", broken.as_bytes()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("deploy/web.yaml:7:9: spec.port: 70000"),
        "{problems:?}"
    );
}
