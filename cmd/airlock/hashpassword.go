package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

func hashPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password < FILE",
		Short: "Print the bcrypt hash of a password read from standard input",
		Long: `Read one line from standard input and print its bcrypt hash, for
passwordHash in the configuration's auth.users and auth.tokens.`,
		Example: `  echo "$PW" | airlock hash-password
  airlock hash-password < password.txt`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return hashPassword(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// hashPassword prints the bcrypt hash of the first line of stdin.
func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return usagef("empty password: give it on standard input, e.g. echo \"$PW\" | airlock hash-password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(h))
	return nil
}
