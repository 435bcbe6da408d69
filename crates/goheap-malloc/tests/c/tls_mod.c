/* A module with thread-local storage, compiled many times over by tests/threads.rs as
 * libtls<N>.so and loaded with dlopen by tls_main.c. */
__thread int tls_counter[64];

int tls_bump(void) { return ++tls_counter[0]; }
