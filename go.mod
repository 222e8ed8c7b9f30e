module github.com/apiusage/apiusage

go 1.26.8
