"""The site half of `rebuilder publish`: rendering the pages and feeds from the tables.

Read the inputs (`inputs`), query them (`queries`), plan and render the files (`build`,
`pages`, `feeds`, `allfeeds`, ...), write what changed (`sitewriter`). It may read what the
state half decided (`jobs.publish.state`), never the reverse.
"""
