//! Tokens signed by a login service's own keys: RS256, ES256 and EdDSA public keys in PEM,
//! and a JWKS document whose keys are picked by `kid`. The private halves here are test
//! fixtures, made with `openssl genpkey`.

use std::time::{SystemTime, UNIX_EPOCH};

use chat_auth::{Claims, JwtKeys};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

const RSA_KEY: &str = include_str!("fixtures/rsa.key");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa.pub.pem");
const EC_KEY: &str = include_str!("fixtures/ec.key");
const EC_PUBLIC: &str = include_str!("fixtures/ec.pub.pem");
const ED_KEY: &str = include_str!("fixtures/ed.key");
const ED_PUBLIC: &str = include_str!("fixtures/ed.pub.pem");
const JWKS: &str = include_str!("fixtures/jwks.json");

fn claims() -> Claims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Claims {
        sub: "alice".into(),
        device: Some("phone".into()),
        exp: Some(now + 600),
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
    }
}

fn signed(algorithm: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims(), key).unwrap()
}

#[test]
fn pem_public_keys_of_each_kind_verify_their_tokens_only() {
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
    let mut server = JwtKeys::new(b"hs256-secret").unwrap();
    for public in [RSA_PUBLIC, EC_PUBLIC, ED_PUBLIC] {
        server.accept_public_key_pem(public.as_bytes()).unwrap();
    }
    for token in [
        signed(Algorithm::RS256, &rsa, None),
        signed(Algorithm::ES256, &ec, None),
        signed(Algorithm::EdDSA, &ed, None),
    ] {
        let id = server.verify(&token).unwrap();
        assert_eq!(
            (id.user_id.as_str(), id.device_id.as_deref()),
            ("alice", Some("phone"))
        );
    }
    // Only the RSA key trusted: the others' tokens are refused.
    let mut rsa_only = JwtKeys::new(b"hs256-secret").unwrap();
    rsa_only
        .accept_public_key_pem(RSA_PUBLIC.as_bytes())
        .unwrap();
    assert!(rsa_only
        .verify(&signed(Algorithm::ES256, &ec, None))
        .is_err());
    assert!(rsa_only
        .verify(&signed(Algorithm::EdDSA, &ed, None))
        .is_err());
    // A token re-signed with HS256 over the public key's text (algorithm confusion) fails.
    let confused = EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap();
    assert!(rsa_only
        .verify(&signed(Algorithm::HS256, &confused, None))
        .is_err());
    assert!(JwtKeys::new(b"s")
        .unwrap()
        .accept_public_key_pem(b"not a key")
        .is_err());
}

#[test]
fn jwks_keys_are_picked_by_kid() {
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let mut server = JwtKeys::new(b"hs256-secret").unwrap();
    server.accept_jwks(JWKS).unwrap();
    assert!(server
        .verify(&signed(Algorithm::RS256, &rsa, Some("login-2026-11")))
        .is_ok());
    assert!(server.verify(&signed(Algorithm::RS256, &rsa, None)).is_ok());
    assert!(
        server
            .verify(&signed(Algorithm::RS256, &rsa, Some("another-kid")))
            .is_err(),
        "a kid the JWKS does not have"
    );
    assert!(JwtKeys::new(b"s").unwrap().accept_jwks("{}").is_err());
}
