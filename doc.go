// Package sluice holds the domain of the Sluice storage node: farmer tokens,
// chunk contracts, their timing rules, the error kinds every layer shares,
// and the snapshot records the stores keep.
//
// Nothing in this package does I/O, starts a goroutine or reads the clock:
// every rule takes the current time as an argument, so it can be tested
// with a table and reused by the actors that sequence it.
package sluice
