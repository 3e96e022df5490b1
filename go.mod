module github.com/gaffer-go/gaffer

go 1.26
