//! Compile errors of `#[tiered::memoize]` misuse say what to do (`tests/ui/*.stderr`).

#[test]
fn misuse_is_a_compile_error_that_says_what_to_do() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/options.rs");
    t.compile_fail("tests/ui/arguments.rs");
    t.compile_fail("tests/ui/self_not_serialize.rs");
    t.compile_fail("tests/ui/returns.rs");
    t.compile_fail("tests/ui/refresh.rs");
    if !cfg!(feature = "tokio") {
        t.compile_fail("tests/ui/async_without_tokio.rs");
    }
}
