// Command migdb-check-done is a migdb worker; it is not implemented yet.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "migdb-check-done: not implemented yet")
	os.Exit(1)
}
