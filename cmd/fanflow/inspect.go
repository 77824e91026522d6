package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/spf13/cobra"
)

func inspectCmd() *cobra.Command {
	sc := defaultStoreConfig()
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Read orders straight from a store: one order, a list, counts by status",
		Long: "inspect reads the store fanflow writes. The embedded store is a locked file:\n" +
			"stop the fanflow that uses it first (or read through the HTTP API).",
	}
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	sc.bindFlags(cmd.PersistentFlags())
	with := func(fn func(ctx context.Context, s persistence.Store, out io.Writer) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			for _, name := range []string{"store", "data-dir", "redis-url", "redis-prefix"} {
				if f := cmd.Flags().Lookup(name); f != nil && !f.Changed {
					if v, ok := os.LookupEnv(envName(name)); ok {
						if err := f.Value.Set(v); err != nil {
							return fmt.Errorf("%s: %w", envName(name), err)
						}
					}
				}
			}
			if sc.Store == "memory" {
				return fmt.Errorf("store: memory lives inside a fanflow process and cannot be inspected")
			}
			log, err := newLogger(os.Stderr, "text", "warn")
			if err != nil {
				return err
			}
			s, err := sc.open(log)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return fn(ctx, s, cmd.OutOrStdout())
		}
	}

	orderCmd := &cobra.Command{
		Use:   "order ORDER_ID",
		Short: "Print one order's stored snapshot",
		Args:  cobra.ExactArgs(1),
	}
	orderCmd.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, s persistence.Store, out io.Writer) error {
			rec, err := s.Load(ctx, args[0])
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := json.Indent(&b, rec.Data, "", "  "); err != nil {
				return fmt.Errorf("order %s: stored snapshot is not JSON: %w", args[0], err)
			}
			b.WriteByte('\n')
			_, err = b.WriteTo(out)
			return err
		})(cmd, args)
	}

	var status, cursor string
	var limit int
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List orders, newest first",
		Args:  cobra.NoArgs,
	}
	listCmd.Flags().StringVar(&status, "status", "", "only orders with this status (running, completed, failed, expired, cancelled)")
	listCmd.Flags().IntVar(&limit, "limit", 20, "orders per page")
	listCmd.Flags().StringVar(&cursor, "cursor", "", "continue from a previous page's next cursor")
	listCmd.RunE = with(func(ctx context.Context, s persistence.Store, out io.Writer) error {
		q := persistence.Query{Limit: limit, Cursor: cursor}
		if status != "" {
			st, err := order.ParseStatus(status)
			if err != nil {
				return fmt.Errorf("--status: %w", err)
			}
			q.Status = st
		}
		page, err := s.List(ctx, q)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ORDER ID\tSTATUS\tCREATED\tDEADLINE\tVERSION")
		for _, r := range page.Records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.OrderID, r.Status, r.CreatedAt.UTC().Format(time.RFC3339), r.Deadline.UTC().Format(time.RFC3339), r.Version)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(out, "next page: --cursor %s\n", page.Next)
		}
		return nil
	})

	statsCmd := &cobra.Command{
		Use:   "stats",
		Short: "Count stored orders by status",
		Args:  cobra.NoArgs,
	}
	statsCmd.RunE = with(func(ctx context.Context, s persistence.Store, out io.Writer) error {
		counts, err := countByStatus(ctx, s)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tORDERS")
		total := 0
		for st := order.Running; st <= order.Cancelled; st++ {
			fmt.Fprintf(tw, "%s\t%d\n", st, counts[st])
			total += counts[st]
		}
		fmt.Fprintf(tw, "total\t%d\n", total)
		return tw.Flush()
	})

	cmd.AddCommand(orderCmd, listCmd, statsCmd)
	return cmd
}

// countByStatus pages through every stored order.
func countByStatus(ctx context.Context, s persistence.Store) (map[order.Status]int, error) {
	counts := map[order.Status]int{}
	q := persistence.Query{Limit: 1000}
	for {
		page, err := s.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Records {
			counts[r.Status]++
		}
		if page.Next == "" {
			return counts, nil
		}
		q.Cursor = page.Next
	}
}
