//! Defaults of a settings struct, taken from its clap definition: each default is written
//! once, on its flag, and `Default` impls and tests reuse it.

use clap::{Args, FromArgMatches};

/// `T` as if its flags were all left out. Environment variables named by its flags still
/// apply, as they would for the binary.
pub fn defaults_of<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = command
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every setting has a default");
    T::from_arg_matches(&matches).expect("defaults parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Example {
        /// A number.
        #[arg(long, default_value_t = 7)]
        count: u32,
        /// A name.
        #[arg(long, default_value = "seven")]
        name: String,
    }

    #[test]
    fn takes_every_flag_default() {
        let example: Example = defaults_of();
        assert_eq!((example.count, example.name.as_str()), (7, "seven"));
    }
}
