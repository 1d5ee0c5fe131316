//! Prints the OpenAPI document; `make openapi` writes it to `docs/openapi.json`.

fn main() {
    print!("{}", herald_api::openapi_json());
}
