package main

import "runtime"

// The main goroutine keeps the main thread (which the runtime never
// terminates), so goroutines that lock a thread and exit in tests really
// end their thread, as they would in leaderd.
func init() { runtime.LockOSThread() }
