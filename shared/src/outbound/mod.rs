//! Status webhooks to tenants (issue 15): what Herald sends out, as opposed to
//! `crate::webhook`, which is what providers send in. The signing secret and how it is
//! kept (`secret`), the Standard Webhooks signature (`signature`), and the rules an
//! endpoint's URL must pass when it is registered and again when it is called
//! (`url_rules`), one delivery attempt (`deliver`), and the events and their retry schedule
//! (`events`).

pub mod deliver;
pub mod events;
pub mod secret;
pub mod signature;
pub mod url_rules;
