package tsdb

import "os"

// testBlockStore is the block layer the tests use: package tsdb/block,
// or the minimal gob store in helpers_test.go with TSDB_TEST_FILE_BLOCKS=1
// (to tell head bugs from block bugs).
func testBlockStore() blockStore {
	if os.Getenv("TSDB_TEST_FILE_BLOCKS") != "" {
		return fileBlocks{}
	}
	return realBlocks{}
}
