// Command migdb-migrate is a migdb worker; it is not implemented yet.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "migdb-migrate: not implemented yet")
	os.Exit(1)
}
