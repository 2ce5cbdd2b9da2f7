package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// runHashPassword prints the bcrypt hash of a password read from stdin,
// for auth.users and auth.tokens (passwordHash).
func runHashPassword(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return hashPassword(os.Stdin, args, stdout, stderr)
}

func hashPassword(stdin io.Reader, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "airlock hash-password: usage: airlock hash-password < password-file")
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "airlock hash-password: %v\n", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "airlock hash-password: empty password")
		return 2
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "airlock hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}
