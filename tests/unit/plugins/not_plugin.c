/* not_plugin.c — a shared object without the entry point. */
__attribute__((visibility("default"))) int some_function(void);
int some_function(void) { return 42; }
