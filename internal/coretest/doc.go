// Package coretest holds what the tests of the deterministic cores
// (actors/dispatcher, runner, observer, reporter) share: the virtual
// clock's start, commit ids, and pickers for the effects a Step returns.
// Only test files import it. It must not import a core, so that every
// core's tests can use it.
package coretest
